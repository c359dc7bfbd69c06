"""`vm list`'s two readings of a host agree on a real libvirtd: the brief one (stopped VMs from one
bulk stats call, running ones from their XML) and the long one (every VM's XML), for generated
mixes of running, paused and stopped VMs with file, volume and CD-ROM disks and NICs."""
from __future__ import annotations

import json

import libvirt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import cli_ok, dir_pool_element, volume_element
from virtops.ops import vmrows
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec, NicSpec
from virtops.host import Host

POOL = "listing"
PREFIX = "ls-"
BUS = {"vd": "virtio", "sd": "sata", "hd": "ide"}
KINDS = {"vd": ["file", "volume"], "sd": ["file", "volume", "cdrom"], "hd": ["cdrom"]}  # what QEMU takes on each bus
DISK = st.sampled_from(["vda", "vdb", "vdc", "sda", "sdb", "hdc"]).flatmap(
    lambda target: st.tuples(st.just(target), st.sampled_from(KINDS[target[:2]]), st.booleans()))
VM = st.fixed_dictionaries({
    "memory_mib": st.integers(32, 192),
    "vcpus": st.integers(1, 2),
    "disks": st.lists(DISK, max_size=3, unique_by=lambda disk: disk[0]),
    "nics": st.integers(0, 2),
    "state": st.sampled_from(["shut off", "shut off", "running", "paused"]),
})


@pytest.fixture(scope="module")
def pool(lab):
    owner = Host(lab.uri)
    conn = owner.conn
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(POOL)))
    pool.build()
    pool.create()
    try:
        yield pool
    finally:
        _remove_vms(conn)
        for vol in pool.listAllVolumes():
            vol.delete()
        pool.destroy()
        pool.undefine()
        owner.close()


def _remove_vms(conn: libvirt.virConnect) -> None:
    for dom in conn.listAllDomains():
        if dom.name().startswith(PREFIX):
            if dom.ID() >= 0:
                dom.destroy()
            dom.undefine()


def _volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return pool.createXML(X.to_string(volume_element(name, 1 << 20, "raw")))


def _spec(pool: libvirt.virStoragePool, name: str, vm: dict) -> DomainSpec:
    disks = []
    for target, kind, readonly in vm["disks"]:
        readonly = readonly and BUS[target[:2]] == "virtio"  # QEMU takes read-only SATA and IDE disks only as CD-ROMs
        volume = _volume(pool, f"{name}-{target}")  # one per VM: QEMU locks an image written by two
        if kind == "file":
            disks.append(DiskSpec(target=target, bus=BUS[target[:2]], path=volume.path(), readonly=readonly))
        else:
            disks.append(DiskSpec(target=target, bus=BUS[target[:2]], pool=POOL, volume=volume.name(),
                                  device="cdrom" if kind == "cdrom" else "disk", readonly=readonly))
    nics = [NicSpec(network="default", mac=f"52:54:00:4c:{int(name[3:]):02x}:{i:02x}") for i in range(vm["nics"])]
    return DomainSpec(name=name, memory_kib=vm["memory_mib"] * 1024, vcpus=vm["vcpus"], disks=disks, nics=nics)


def _mine(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["name"].startswith(PREFIX)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vms=st.lists(VM, max_size=3))
def test_brief_and_long_listings_agree(host, pool, vms):
    conn = host.conn
    _remove_vms(conn)  # hypothesis reuses the fixtures: each example starts from none of ours
    for index, vm in enumerate(vms):
        dom = conn.defineXML(_spec(pool, f"{PREFIX}{index}", vm).to_xml())
        if vm["state"] != "shut off":  # paused at once: the guest has nothing to boot, QEMU is what counts
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
            if vm["state"] == "running":
                dom.resume()

    for show_all in (True, False):
        brief, long = _mine(vmrows.summaries(host, show_all)), _mine(vmrows.detailed(host, show_all))
        expected = sorted((f"{PREFIX}{i}" for i, vm in enumerate(vms) if show_all or vm["state"] != "shut off"),
                          key=lambda name: (vms[int(name[3:])]["state"] == "shut off", name))
        assert [row["name"] for row in brief] == [row["name"] for row in long] == expected
        for short, full in zip(brief, long):
            vm = vms[int(short["name"][3:])]
            same = ("id", "name", "uuid", "state", "running", "vcpus", "memory_bytes")
            assert {k: short[k] for k in same} == {k: full[k] for k in same}
            assert (short["state"], short["vcpus"], short["memory_bytes"]) == (vm["state"], vm["vcpus"], vm["memory_mib"] << 20)
            assert (short["id"] is not None) == short["running"] == (vm["state"] != "shut off")
            assert short["disks"] == [disk["target"] for disk in full["disks"]]
            assert sorted(short["disks"]) == sorted(d[0] for d in vm["disks"])
            assert [nic["network"] for nic in full["nics"]] == ["default"] * vm["nics"]


def test_cli_listings(lab, host, pool):
    """The table and JSON faces of both readings: one running and one stopped VM."""
    conn = host.conn
    _remove_vms(conn)
    conn.defineXML(_spec(pool, f"{PREFIX}1", {"memory_mib": 64, "vcpus": 2, "nics": 1,
                                              "disks": [("vda", "volume", False)]}).to_xml())
    conn.defineXML(_spec(pool, f"{PREFIX}2", {"memory_mib": 96, "vcpus": 1, "nics": 1,
                                              "disks": [("vda", "file", False), ("sdb", "cdrom", True)]}).to_xml())
    conn.lookupByName(f"{PREFIX}1").createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        brief = {v["name"]: v for v in json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--json"))}
        assert brief[f"{PREFIX}1"]["state"] == "paused" and brief[f"{PREFIX}1"]["id"] is not None
        assert brief[f"{PREFIX}2"] | {"uuid": None} == {
            "id": None, "name": f"{PREFIX}2", "uuid": None, "state": "shut off", "running": False,
            "persistent": True, "autostart": False, "vcpus": 1, "memory_bytes": 96 << 20, "disks": ["vda", "sdb"], "ips": []}
        long = {v["name"]: v for v in json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--long", "--json"))}
        assert [d["source"] for d in long[f"{PREFIX}1"]["disks"]] == [f"{POOL}/{PREFIX}1-vda"]
        assert long[f"{PREFIX}2"]["nics"][0]["mac"] == "52:54:00:4c:02:00"
        table = cli_ok(lab.uri, "vm", "list", "--all").splitlines()
        assert table[0].split() == ["Id", "Name", "State", "vCPUs", "Memory", "Disks", "IP"]
        row = next(line.split() for line in table if f"{PREFIX}2" in line)
        assert row == ["-", f"{PREFIX}2", "shut", "off", "1", "96.00", "MiB", "vda", "sdb", "-"]
        wide = cli_ok(lab.uri, "vm", "list", "-al")
        assert "52:54:00:4c:02:00 default" in wide and f"vda={POOL}/{PREFIX}1-vda" in wide
        assert f"{PREFIX}2" not in cli_ok(lab.uri, "vm", "list")  # without --all: running (and paused) only
    finally:
        _remove_vms(conn)
