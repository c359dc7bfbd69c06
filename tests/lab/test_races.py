"""Host-wide facts hold under concurrency (base/hostlock.py): operations that check a fact of the
whole host and then act on it (a MAC nobody else uses, a free disk target, a subnet no other
network overlaps, a volume no VM uses) hold the host's lock across both, in every face, so two
requests at once can never both pass the check."""
from __future__ import annotations

import subprocess
import sys

import libvirt
import pytest

from tests.helpers import cli_ok
from virtops.xmlmodels import doc as X

ROUNDS = 10
NET, VMS = "race-net", ("race-a", "race-b")


@pytest.fixture(scope="module")
def two_vms(lab):
    cli_ok(lab.uri, "net", "create", NET, "--subnet", "10.81.0.0/24")
    for vm in VMS:
        cli_ok(lab.uri, "vm", "create", vm, "--memory", "64M")
    conn = libvirt.open(lab.uri)
    try:
        yield conn
    finally:
        for vm in VMS:
            conn.lookupByName(vm).undefine()
        net = conn.networkLookupByName(NET)
        net.destroy()
        net.undefine()
        conn.close()


def _macs(conn: libvirt.virConnect, vm: str) -> list[str]:
    root = X.parse(conn.lookupByName(vm).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return [mac.get("address") for mac in root.findall("devices/interface/mac")]


def _at_once(uri: str, argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """The commands as processes started together, each waited for."""
    procs = [subprocess.Popen([sys.executable, "-m", "virtops", "-c", uri, *argv], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv in argvs]
    results = []
    for argv, proc in zip(argvs, procs):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


def test_two_attach_nic_with_one_mac_on_two_vms_at_once_exactly_one_wins(lab, two_vms):
    conn = two_vms
    for round_ in range(ROUNDS):
        mac = f"52:54:00:81:00:{round_:02x}"
        results = _at_once(lab.uri, [["vm", "attach-nic", vm, "--network", NET, "--mac", mac] for vm in VMS])
        winners = [vm for vm, result in zip(VMS, results) if result.returncode == 0]
        holders = [vm for vm in VMS if mac in _macs(conn, vm)]
        assert len(winners) == 1 and holders == winners, (round_, [(r.returncode, r.stderr) for r in results])
        (loser,) = [result for result in results if result.returncode != 0]
        assert loser.returncode == 1 and f"{mac} is already used by" in loser.stderr, loser.stderr
        assert len(loser.stderr.strip().splitlines()) == 1, loser.stderr
        cli_ok(lab.uri, "vm", "detach-nic", winners[0], mac)
