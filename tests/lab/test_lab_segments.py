"""Lab fleets: `lab up NAME --segment SEG` joins labs to a shared layer-2 segment (a bridge in the
namespace virtops-seg-SEG), each with an allocated address, libvirtd reachable from the other labs
over TCP; several segments stay apart from each other and from the real host, and the last lab
down removes its segment. Compared before and after as tests/lab/test_lab.py does, limited to what
this test's labs and segments create (other runs on this machine come and go meanwhile)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from virtops.lab.labhost import Lab, lab_root

TOKEN = str(os.getpid() % 100000)
SEG_A, SEG_B = f"sa-{TOKEN}", f"sb-{TOKEN}"
A1, A2, B1 = f"pytest-sa1-{TOKEN}", f"pytest-sa2-{TOKEN}", f"pytest-sb1-{TOKEN}"


def _sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virtops", *args], capture_output=True, text=True, timeout=300)


def in_netns(netns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=120)


def real_host_network() -> dict[str, str]:
    """The real host's links, addresses and routes, without their counters and timers."""
    return {"links": _sh("ip", "-o", "link", "show").replace("state UP", "").strip(),
            "addresses": "\n".join(line.split(" valid_lft")[0] for line in _sh("ip", "-o", "addr").splitlines()),
            "routes": _sh("ip", "route", "show", "table", "all")}


def ours() -> dict[str, list[str]]:
    """Namespaces and state this test's labs and segments make."""
    # Only this test's: the session's own lab hosts carry the same pid in their names.
    names = (A1, A2, B1, SEG_A, SEG_B)
    netns = [line.split()[0] for line in _sh("ip", "netns", "list").splitlines()
             if any(name in line.split()[0] for name in names)]
    segments = lab_root() / ".segments"
    files = sorted(p.name for p in segments.glob(f"*{TOKEN}.*")) if segments.is_dir() else []
    return {"netns": sorted(netns), "segment_files": files}


def listed() -> dict[str, dict]:
    result = cli("lab", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {lab["name"]: lab for lab in json.loads(result.stdout)}


def test_segments_join_labs_apart_from_each_other_and_the_real_host():
    before_host, before_ours = real_host_network(), ours()
    assert before_ours == {"netns": [], "segment_files": []}
    try:
        # Two labs join segment A at once: the allocation under the segment's lock gives each its own address.
        joining = [subprocess.Popen([sys.executable, "-m", "virtops", "lab", "up", name, "--segment", SEG_A],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in (A1, A2)]
        for proc in joining:
            _out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        up_b = cli("lab", "up", B1, "--segment", SEG_B, "--uplink")  # an uplink and a segment on one lab
        assert up_b.returncode == 0, up_b.stderr

        labs = listed()
        a1, a2, b1 = (labs[name]["segment_address"] for name in (A1, A2, B1))
        assert (labs[A1]["segment"], labs[A2]["segment"], labs[B1]["segment"]) == (SEG_A, SEG_A, SEG_B)
        assert a1 != a2 and all(addr.startswith("203.0.113.") and addr.endswith("/24") for addr in (a1, a2, b1))
        a1, a2, b1 = (addr.split("/")[0] for addr in (a1, a2, b1))
        assert ours()["netns"] == sorted([f"virtops-{A1}", f"virtops-{A2}", f"virtops-{B1}", f"virtops-{B1}-out",
                                          f"virtops-seg-{SEG_A}", f"virtops-seg-{SEG_B}"])

        # On segment A: each lab's libvirtd answers the other over TCP (libvirt's remote protocol).
        for here, there, address in ((A1, A2, a2), (A2, A1, a1)):
            seen = in_netns(f"virtops-{here}", sys.executable, "-m", "virtops", "-c", f"qemu+tcp://{address}/system",
                            "host", "info", "--json")
            assert seen.returncode == 0, seen.stderr
            assert json.loads(seen.stdout)["uri"] == f"qemu+tcp://{address}/system"
        # The remote daemon is the other lab's: a network defined through TCP shows up on its unix socket.
        define = in_netns(f"virtops-{A1}", sys.executable, "-m", "virtops", "-c", f"qemu+tcp://{a2}/system",
                          "net", "create", "segcheck", "--subnet", "10.231.0.0/24", "--mode", "isolated", "--no-start")
        assert define.returncode == 0, define.stderr
        assert "segcheck" in cli("-c", f"lab:{A2}", "net", "list", "--all").stdout
        assert "segcheck" not in cli("-c", f"lab:{A1}", "net", "list", "--all").stdout

        # Segment B sees nothing of segment A, and B1's uplink still works beside its segment.
        other = [addr for addr in (a1, a2) if addr != b1]
        for address in other:
            assert in_netns(f"virtops-{B1}", "ping", "-c", "1", "-W", "1", address).returncode != 0
        assert in_netns(f"virtops-{B1}", "ping", "-c", "1", "-W", "2", "198.51.100.1").returncode == 0
        assert in_netns(f"virtops-{A1}", "ping", "-c", "1", "-W", "2", a2).returncode == 0
        # The real host has no address, route or link on any segment, and reaches none of them.
        assert "203.0.113." not in _sh("ip", "addr") + _sh("ip", "route", "show", "table", "all")
        assert subprocess.run(["ping", "-c", "1", "-W", "1", a1], capture_output=True).returncode != 0
        assert real_host_network() == before_host

        # One lab of A goes: A stays for the other; the last one out removes it.
        assert cli("lab", "down", A1).returncode == 0
        assert f"virtops-seg-{SEG_A}" in ours()["netns"] and listed()[A2]["segment"] == SEG_A
        assert cli("lab", "down", A2).returncode == 0
        assert f"virtops-seg-{SEG_A}" not in ours()["netns"]
        assert not [f for f in ours()["segment_files"] if f.startswith(f"{SEG_A}.")]
        # A lab without --segment behaves as before: no segment, no seg0.
        assert cli("lab", "up", A1).returncode == 0
        assert listed()[A1]["segment"] is None
        assert "seg0" not in _sh("ip", "-n", f"virtops-{A1}", "link")
    finally:
        for name in (A1, A2, B1):
            Lab(name).down()
    assert ours() == before_ours
    assert real_host_network() == before_host
    assert not any(Path("/run/netns", f"virtops-seg-{seg}").exists() for seg in (SEG_A, SEG_B))


def test_segment_refusals_change_nothing():
    result = cli("lab", "up", f"pytest-sr-{TOKEN}", "--segment", "Bad_Segment")
    assert result.returncode == 1 and "--segment: 'Bad_Segment' is not accepted" in result.stderr
    assert result.stderr.count("\n") == 1
    assert ours() == {"netns": [], "segment_files": []}
    assert not Lab(f"pytest-sr-{TOKEN}").exists()
