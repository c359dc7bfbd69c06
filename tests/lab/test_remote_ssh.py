"""virtops against a remote host over qemu+ssh://, as operators reach one: the lab's own sshd
(lab/sshd.py: our config, host key and authorized_keys, on the lab's address inside its namespace,
keys only), reached from the lab's outside namespace with the URI's `keyfile=` and the host key
checked against the known hosts the lab gave that namespace. Listings, a VM created and started,
its screenshot, its live display through the ssh tunnel and the web console's WebSocket."""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from tests.lab import test_screens
from tests.lab.test_remote import outside, remote
from tests.lab.test_remote_screen import check_display_from_outside
from virtops.host import Host
from virtops.lab.labhost import Lab
from virtops.ops.screens import parse_png
from virtops.testguest.image import kernel_cmdline, wait_for_report

screen_guest = test_screens.screen_guest  # a running test guest with a screen, on the uplink lab
SSH_VM = "sshvm"


@pytest.fixture
def ssh_lab(uplink_lab):
    """The uplink lab with its own sshd (stopped by its `lab down`)."""
    uplink_lab.up(ssh=True)
    return uplink_lab


def over_ssh(lab, *args: str) -> str:
    result = remote(lab, *args, uri=lab.ssh_uri)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def logins(lab) -> int:
    """Public-key logins the lab's sshd accepted so far: how we know a client came over ssh."""
    return (lab.state_dir / "log" / "sshd.log").read_text().count("Accepted publickey for root from 198.51.100.1")


def connections_on(lab, port: int) -> int:
    """Connections the lab's sshd took on `port` so far (its log is VERBOSE)."""
    log = (lab.state_dir / "log" / "sshd.log").read_text().splitlines()
    return sum(1 for line in log if line.startswith("Connection from 198.51.100.1 ") and f" on 198.51.100.2 port {port} " in line)


def test_listings_over_ssh(ssh_lab):
    lab = ssh_lab
    assert lab.ssh_uri == f"qemu+ssh://root@198.51.100.2/system?keyfile={lab.state_dir}/ssh/id_ed25519"
    assert lab.status().ssh_uri == lab.ssh_uri
    before = logins(lab)
    info = json.loads(over_ssh(lab, "host", "info", "--json"))
    assert info["uri"] == lab.ssh_uri and info["hypervisor"] == "QEMU"
    nets = {n["name"]: n for n in json.loads(over_ssh(lab, "net", "list", "--json"))}
    assert nets["default"]["active"] and nets["default"]["subnet"] == "192.168.122.0/24"
    vms = [v["name"] for v in json.loads(over_ssh(lab, "vm", "list", "--all", "--json"))]
    pools = [p["name"] for p in json.loads(over_ssh(lab, "pool", "list", "--json"))]
    local = libvirt.open(lab.uri)  # the same daemon, seen from here
    try:
        assert sorted(vms) == sorted(d.name() for d in local.listAllDomains())
        assert sorted(pools) == sorted(p.name() for p in local.listAllStoragePools())
        assert sorted(nets) == sorted(n.name() for n in local.listAllNetworks())
    finally:
        local.close()
    assert logins(lab) == before + 4  # each command one ssh login: they came over ssh


def test_sshd_takes_keys_only_on_the_labs_address(ssh_lab):
    lab = ssh_lab
    listening = subprocess.run(["ip", "netns", "exec", lab.netns, "ss", "-Hltn", "sport", "= :22"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert "198.51.100.2:22" in listening and "0.0.0.0:22" not in listening and "*:22" not in listening
    second = subprocess.run(["ip", "netns", "exec", lab.netns, "ss", "-Hltn", "sport", "= :2222"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "198.51.100.2:2222" in second and "0.0.0.0:2222" not in second
    password = subprocess.run(["ip", "netns", "exec", lab.outside_netns, "ssh", "-o", "BatchMode=yes",
                               "-o", "PreferredAuthentications=password,keyboard-interactive", "--",
                               "root@198.51.100.2", "true"], capture_output=True, text=True, timeout=60)
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr
    # The host key is checked (against the lab's own, in the outside namespace's known hosts), and
    # a login sees the lab's /run/libvirt (its mount namespace), where libvirt's remote side goes.
    login = subprocess.run(["ip", "netns", "exec", lab.outside_netns, "ssh", "-o", "BatchMode=yes", "-i",
                            str(lab.sshd().client_key), "--", "root@198.51.100.2", "stat", "-c", "%d:%i", "/run/libvirt"],
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    run_dir = (lab.state_dir / "run").stat()
    assert login.stdout.strip() == f"{run_dir.st_dev}:{run_dir.st_ino}"


def test_a_vm_started_and_its_screenshot_over_ssh(ssh_lab, guest_image, tmp_path):
    lab = ssh_lab
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell', screen=True)}"
    local = Host(lab.uri)  # the same daemon, seen from here, to check what the ssh client did
    try:
        over_ssh(lab, "vm", "create", SSH_VM, "--memory", "128M", "--graphics", "vnc", "--boot", boot)
        assert not local.conn.lookupByName(SSH_VM).isActive()
        over_ssh(lab, "vm", "start", SSH_VM)
        assert local.conn.lookupByName(SSH_VM).isActive()
        console = local.vms.console(SSH_VM)
        try:
            wait_for_report(console, lambda r: True)  # booted: its text is on the screen
        finally:
            console.close()
        listed = {v["name"]: v for v in json.loads(over_ssh(lab, "vm", "list", "--json"))}
        assert listed[SSH_VM]["state"] == "running"
        path = tmp_path / "screen.png"
        over_ssh(lab, "vm", "screenshot", SSH_VM, "-o", str(path))
        picture = parse_png(path.read_bytes())
        assert (picture.width, picture.height) == (720, 400)  # VGA text mode
        assert test_screens.lit(picture) > 2000  # the kernel's lines, not a blank frame
    finally:
        try:
            dom = local.conn.lookupByName(SSH_VM)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass
        local.close()


def test_display_over_the_ssh_tunnel(ssh_lab, screen_guest):
    """On the sshd's second port: the URI's port carried by libvirt's transport and the tunnel alike."""
    uri = ssh_lab.sshd().uri_on(2222)
    assert uri == f"qemu+ssh://root@198.51.100.2:2222/system?keyfile={ssh_lab.state_dir}/ssh/id_ed25519"
    before, before_22 = connections_on(ssh_lab, 2222), connections_on(ssh_lab, 22)
    check_display_from_outside(ssh_lab, uri)
    # The connection, the display's tunnel (`ssh -W`), serve's connection and its tunnel: all on 2222.
    assert connections_on(ssh_lab, 2222) >= before + 4 and connections_on(ssh_lab, 22) == before_22


def test_a_registered_ssh_host_in_fleet_listings(ssh_lab, tmp_path):
    """The host registry and -H over qemu+ssh:// (issue 13's remote protocol), from the outside namespace."""
    lab = ssh_lab
    env = {"VIRTOPS_HOSTS": str(tmp_path / "hosts.yaml"), "VIRTOPS_SYSTEM_HOSTS": ""}
    added = outside(lab, "host", "add", "kvm1", lab.ssh_uri, "--tag", "ssh", env=env)
    assert added.returncode == 0, added.stderr
    listed = outside(lab, "host", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (kvm1,) = [h for h in json.loads(listed.stdout) if h["name"] == "kvm1"]
    assert kvm1["uri"] == lab.ssh_uri and kvm1["reachable"] is True, kvm1
    nets = outside(lab, "-H", "tag:ssh", "net", "list", "--json", env=env)
    assert nets.returncode == 0, nets.stderr
    assert [(n["host"], n["name"]) for n in json.loads(nets.stdout)] == [("kvm1", "default")]


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        stat = path.lstat()
        digest.update(f"{path}|{stat.st_mode}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _real_host_ssh() -> dict:
    """What of the machine's own ssh a lab's sshd and its clients must leave alone."""
    listening = subprocess.run(["ss", "-Hltn", "sport", "= :22"], capture_output=True, text=True, check=True).stdout
    return {"listening on 22": listening.strip(), "/etc/ssh": _digest(Path("/etc/ssh")),
            "~/.ssh": _digest(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh")}


def test_an_ssh_lab_leaves_no_trace_on_the_real_host():
    before = _real_host_ssh()
    lab = Lab(f"sshtrace-{os.getpid() % 10000}")
    lab.up(ssh=True)
    try:
        sshd = lab.sshd()
        pid = sshd.pid()
        assert sshd.running() and lab.status().uplink
        assert json.loads(over_ssh(lab, "host", "info", "--json"))["uri"] == lab.ssh_uri
        assert _real_host_ssh() == before  # sshd only in the lab's namespace; no known_hosts written
        assert sshd.client_etc == Path(f"/etc/netns/{lab.outside_netns}/ssh") and sshd.client_etc.is_dir()
    finally:
        lab.down()
    assert not Path(f"/proc/{pid}").exists()  # stopped (and reaped by the lab's keeper)
    assert not sshd.client_etc.parent.exists() and not lab.state_dir.exists()
    assert _real_host_ssh() == before


TUNNEL_ERRORS = """
import json, sys
from urllib.parse import urlsplit
from virtops.base.errors import VirtopsError
from virtops.ops.screens import ssh_tunnel
said = []
for uri, port in ((sys.argv[1], 9), (sys.argv[2], 5900)):
    try:
        ssh_tunnel(urlsplit(uri), port, "nowhere").close()
        said.append("opened")
    except VirtopsError as err:
        said.append(str(err))
print(json.dumps(said))
"""


def test_a_tunnel_that_ssh_cannot_open_is_one_sentence(ssh_lab):
    """What ssh says becomes the error (the web console's 4409 reason), not a display closed without one."""
    lab = ssh_lab
    without_key = lab.ssh_uri.split("?")[0]
    done = subprocess.run(["ip", "netns", "exec", lab.outside_netns, sys.executable, "-c", TUNNEL_ERRORS,
                           lab.ssh_uri, without_key], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    closed_port, no_key = json.loads(done.stdout)
    assert closed_port == ("the ssh tunnel to the display of VM nowhere on 198.51.100.2 ended: "
                           "channel 0: open failed: connect failed: Connection refused; stdio forwarding failed.")
    assert no_key == ("the ssh tunnel to the display of VM nowhere on 198.51.100.2 ended: "
                      "root@198.51.100.2: Permission denied (publickey).")
