"""Disks and NICs of a stopped VM on a lab host: persistent attach and detach, default targets,
generated and given MACs, virsh's command names, and every refusal with the host unchanged.
(Live attach and detach are proved inside the guest in test_handbook_guest.py.)"""
from __future__ import annotations

import json

import pytest

from tests.helpers import cli_ok, host_state, let_qemu_in, run_cli
from tests.lab.test_handbook_guest import _pool, _volume, remove_domains_and_pool
from virtops.xmlmodels import doc as X

POOL = "devtest"
MIB = 1024**2


@pytest.fixture
def dev_host(host, lab):
    conn = host.conn
    _pool(conn, POOL)
    let_qemu_in(host.uri, POOL)  # the handbook's 0700 pool, opened as the access check proposes
    for name in ("sys", "a", "b", "c", "d"):
        _volume(conn, name, 8 * MIB, pool=POOL)
    result = run_cli("vm", "create", "dev", "--memory", "128M", "--disk", f"{POOL}/sys", uri=lab.uri)
    assert result.returncode == 0, result.stderr
    result = run_cli("vm", "create", "other", "--memory", "128M", "--disk", f"{POOL}/c",
                     "--network", "default,mac=52:54:00:00:00:42", uri=lab.uri)
    assert result.returncode == 0, result.stderr
    yield host
    remove_domains_and_pool(conn, POOL)


def test_attach_and_detach_on_a_stopped_vm(lab, dev_host):
    conn = dev_host.conn
    disk = json.loads(cli_ok(lab.uri, "vm", "attach-disk", "dev", f"{POOL}/a", "--json"))
    assert disk["target"] == "vdb"
    disk = json.loads(cli_ok(lab.uri, "vm", "attach-disk", "dev", f"{POOL}/b", "--target", "vdf", "--readonly",
                          "--serial", "B1", "--cache", "none", "--json"))
    assert disk["target"] == "vdf" and disk["readonly"] and disk["serial"] == "B1"
    nic = json.loads(cli_ok(lab.uri, "attach-interface", "dev", "--network", "default", "--model", "e1000", "--json"))
    assert nic["mac"].startswith("52:54:00:") and nic["mac"] != "52:54:00:00:00:42"
    given = json.loads(cli_ok(lab.uri, "vm", "attach-nic", "dev", "--network", "default", "--mac", "52:54:00:AB:CD:EF", "--json"))
    assert given["mac"] == "52:54:00:ab:cd:ef"

    root = X.parse(conn.lookupByName("dev").XMLDesc(0))
    assert [d.get("dev") for d in root.iterfind("devices/disk/target")] == ["vda", "vdb", "vdf"]
    assert [m.get("address") for m in root.iterfind("devices/interface/mac")] == [nic["mac"], "52:54:00:ab:cd:ef"]
    blk = cli_ok(lab.uri, "domblklist", "dev")
    assert f"{POOL}/a" in blk and "vdf" in blk
    assert "e1000" in cli_ok(lab.uri, "domiflist", "dev")

    before = host_state(conn)
    refusals = [
        (["vm", "attach-disk", "dev", f"{POOL}/c"], "volume"),  # used read-write by `other`
        (["vm", "attach-disk", "dev", f"{POOL}/a"], "volume"),  # already attached here
        (["vm", "attach-disk", "dev", f"{POOL}/missing"], "volume"),
        (["vm", "attach-disk", "dev", "nopool/a"], "volume"),
        (["vm", "attach-disk", "dev", "not-a-ref"], "volume"),
        (["vm", "attach-disk", "dev", f"{POOL}/d", "--target", "vdb"], "target"),
        (["vm", "attach-disk", "nobody", f"{POOL}/a"], "nobody"),
        (["vm", "attach-disk", "dev", f"{POOL}/d", "--live"], "live"),
        (["vm", "attach-nic", "dev", "--network", "default", "--mac", "52:54:00:00:00:42"], "mac"),
        (["vm", "attach-nic", "dev", "--network", "default", "--mac", "52:54:00:00:00"], "mac"),
        (["vm", "attach-nic", "dev", "--network", "default", "--model", "tulip9000"], "model"),
        (["vm", "attach-nic", "dev", "--network", "nonet"], "network"),
        (["vm", "detach-disk", "dev", "vdz"], "target"),
        (["vm", "detach-nic", "dev", "52:54:00:99:99:99"], "mac"),
        (["vm", "detach-nic", "dev", "nonsense"], "mac"),
    ]
    for args, field in refusals:
        result = run_cli(*args, uri=lab.uri)
        message = result.stderr.strip()
        assert result.returncode == 1 and len(message.splitlines()) == 1 and field in message, (args, message)
        assert host_state(conn) == before, args

    cli_ok(lab.uri, "vm", "detach-disk", "dev", "vdb")
    cli_ok(lab.uri, "detach-interface", "dev", nic["mac"])
    root = X.parse(conn.lookupByName("dev").XMLDesc(0))
    assert [d.get("dev") for d in root.iterfind("devices/disk/target")] == ["vda", "vdf"]
    assert [m.get("address") for m in root.iterfind("devices/interface/mac")] == ["52:54:00:ab:cd:ef"]
    # The freed target is the next default again.
    assert json.loads(cli_ok(lab.uri, "vm", "attach-disk", "dev", f"{POOL}/a", "--json"))["target"] == "vdb"


def test_virsh_syntax_of_attach_disk_and_attach_interface(lab, dev_host):
    """What the handbook types: a volume's path and a target, `network NET`, --persistent."""
    conn = dev_host.conn
    path = conn.storagePoolLookupByName(POOL).storageVolLookupByName("a").path()
    cli_ok(lab.uri, "attach-disk", "dev", path, "vdc", "--persistent")
    disk, = X.parse(conn.lookupByName("dev").XMLDesc(0)).xpath("devices/disk[target/@dev='vdc']")
    assert disk.get("type") == "volume" and disk.find("source").attrib == {"pool": POOL, "volume": "a"}
    cli_ok(lab.uri, "attach-interface", "dev", "network", "default", "--model", "virtio", "--persistent")
    assert X.parse(conn.lookupByName("dev").XMLDesc(0)).find("devices/interface/source").get("network") == "default"
    before = host_state(conn)
    not_a_volume = run_cli("attach-disk", "dev", "/etc/passwd", "vdd", uri=lab.uri)
    assert not_a_volume.returncode == 1 and "is not a volume of any pool" in not_a_volume.stderr
    wrong_type = run_cli("attach-interface", "dev", "ethernet", "tap0", uri=lab.uri)
    assert wrong_type.returncode == 2
    assert host_state(conn) == before
    cli_ok(lab.uri, "attach-interface", "dev", "bridge", "br0", "--persistent")  # virsh's bridge form: a bridge NIC
    bridged = X.parse(conn.lookupByName("dev").XMLDesc(0)).find("devices/interface[@type='bridge']/source")
    assert bridged.get("bridge") == "br0"
