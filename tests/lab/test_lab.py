"""Lab hosts: a real libvirtd in its own namespaces that leaves no trace on the real host."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import libvirt

from tests.helpers import run_cli
from virtops.host import Host
from virtops.lab.labhost import Lab, netns_exists, pid_alive


def _sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _tree_digest(root: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")) if Path(root).exists() else []:
        stat = path.lstat()
        digest.update(f"{path}|{stat.st_mode}|{stat.st_size}".encode())
    return digest.hexdigest()


def real_host_snapshot() -> dict[str, str]:
    """Everything of the real host that a lab must never touch."""
    return {
        "links": json.dumps([(l["ifname"], l.get("master")) for l in json.loads(_sh("ip", "-j", "link"))]),
        "addresses": _sh("ip", "-br", "addr"),
        "routes": _sh("ip", "route"),
        "netns": _sh("ip", "netns", "list"),
        "iptables": "\n".join(l for l in _sh("iptables-save").splitlines() if not l.startswith("#")),
        "nft": _sh("nft", "list", "ruleset"),
        "mounts": "\n".join(sorted(l.split()[4] for l in Path("/proc/self/mountinfo").read_text().splitlines())),
        "etc_libvirt": _tree_digest("/etc/libvirt"),
        "var_lib_libvirt": _tree_digest("/var/lib/libvirt"),
        "run_libvirt": _tree_digest("/run/libvirt"),
        "processes": " ".join(sorted(_lab_processes())),
    }


def _lab_processes() -> list[str]:
    names = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(word in cmd for word in ("libvirtd", "virtlogd", "dnsmasq", "qemu-system", "virtops.lab.keeper")):
                names.append(cmd.split()[0])
    return names


def test_lab_life_leaves_no_trace_on_the_real_host():
    before = real_host_snapshot()
    lab = Lab(f"trace-{os.getpid() % 10000}")
    lab.up(uplink=True)
    try:
        status = lab.status()
        assert status.state == "running" and status.uplink
        assert netns_exists(lab.netns) and netns_exists(lab.outside_netns)
        conn = libvirt.open(lab.uri)
        assert conn.networkLookupByName("default").isActive()  # dnsmasq, bridge, firewall rules: all in the lab
        conn.close()
        assert "virbr0" in _sh("ip", "-n", lab.netns, "-br", "link")
        assert "virbr0" not in _sh("ip", "-br", "link")
        assert lab.up().state == "running"  # idempotent
    finally:
        lab.down()
    assert not lab.state_dir.exists()
    assert real_host_snapshot() == before


def test_two_labs_are_isolated_from_each_other():
    a, b = Lab(f"iso-a-{os.getpid() % 10000}"), Lab(f"iso-b-{os.getpid() % 10000}")
    a.up(), b.up()
    try:
        conn_a, conn_b = libvirt.open(a.uri), libvirt.open(b.uri)
        conn_a.networkLookupByName("default").destroy()
        assert not conn_a.networkLookupByName("default").isActive()
        assert conn_b.networkLookupByName("default").isActive()
        assert "virbr0" not in _sh("ip", "-n", a.netns, "-br", "link")
        assert "virbr0" in _sh("ip", "-n", b.netns, "-br", "link")
        assert a.status().libvirtd_pid != b.status().libvirtd_pid
        conn_a.close(), conn_b.close()
    finally:
        a.down()
    assert b.status().state == "running"  # taking A down leaves B alone
    b.down()


def test_a_crashed_lab_is_reported_and_can_be_brought_down():
    lab = Lab(f"crash-{os.getpid() % 10000}")
    lab.up()
    try:
        pid = lab.status().libvirtd_pid
        os.kill(pid, 9)
        for _ in range(50):
            if not pid_alive(pid):
                break
            import time; time.sleep(0.1)
        listed = json.loads(run_cli("lab", "list", "--json").stdout)
        assert {"name": lab.name, "state": "crashed"}.items() <= next(l for l in listed if l["name"] == lab.name).items()
    finally:
        lab.down()
    assert lab.status().state == "down"
    assert not netns_exists(lab.netns)


def test_unreachable_daemon_is_one_clear_sentence():
    result = run_cli("host", "info", uri="lab:nosuchlab")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "No libvirt daemon answers at" in lines[0] and "virtops lab up nosuchlab" in lines[0]


def test_reconnects_after_the_daemon_restarts(lab):
    host = Host(lab.uri)
    first = host.info()
    old_pid = lab.status().libvirtd_pid
    lab.down(remove_state=False)
    lab.up()
    assert lab.status().libvirtd_pid != old_pid
    again = host.info()  # same Host object: the connection reopens by itself
    assert again.libvirt_version == first.libvirt_version
    host.close()


def test_uplink_reaches_outside_and_nothing_leaves_the_namespaces(uplink_lab):
    ping = subprocess.run(["ip", "netns", "exec", uplink_lab.netns, "ping", "-c", "1", "-W", "2", "198.51.100.1"],
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # 'outside' has no route beyond its segment, so nothing can leave it for the real world
    assert "default" not in _sh("ip", "-n", uplink_lab.outside_netns, "route")
    escape = subprocess.run(["ip", "netns", "exec", uplink_lab.outside_netns, "ping", "-c", "1", "-W", "1", "192.0.2.1"],
                            capture_output=True, text=True)
    assert escape.returncode != 0
    assert "198.51.100" not in _sh("ip", "addr")  # the real host never got the segment


def test_lab_cli_round_trip():
    name = f"cli-{os.getpid() % 10000}"
    up = run_cli("lab", "up", name)
    assert up.returncode == 0, up.stderr
    try:
        info = run_cli("host", "info", "--json", uri=f"lab:{name}")
        assert info.returncode == 0, info.stderr
        facts = json.loads(info.stdout)
        assert facts["hypervisor"] == "QEMU" and facts["networks"] == 1
    finally:
        down = run_cli("lab", "down", name)
    assert down.returncode == 0, down.stderr
    assert not netns_exists(f"virtops-{name}")


def test_bad_lab_name_is_a_one_sentence_refusal():
    result = run_cli("lab", "up", "Bad_Name")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: lab name: 'Bad_Name' is not accepted; use 1-20 lowercase letters, digits "
                                     "or '-', starting with a letter.")
