"""Whole-host backup and restore on a real libvirtd, with a rich configuration."""
from __future__ import annotations

import json
import hashlib
import os
import shutil

import libvirt
import pytest

from tests.helpers import delete_everything, dir_pool_element, network_element, volume_element, host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec, KernelBoot, NicSpec
from virtops.lab.labhost import Lab

GiB = 1024**3


@pytest.fixture(scope="module")
def rich_lab():
    """A lab host with several pools, a dozen volumes with qcow2 backing chains, networks of
    several modes with static hosts, and VMs with several disks and NICs."""
    lab = Lab(f"bk-{os.getpid() % 10000}")
    if lab.exists():
        lab.down()
    lab.up()
    conn = libvirt.open(lab.uri)
    try:
        for name in ("images", "data"):
            pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(name)), 0)
            pool.build(0)
            pool.create(0)
            pool.setAutostart(1)
        images = conn.storagePoolLookupByName("images")
        images.createXML(X.to_string(volume_element("base.qcow2", GiB, "qcow2")), 0)
        base_path = images.storageVolLookupByName("base.qcow2").path()
        for i in range(6):
            images.createXML(X.to_string(volume_element(f"linked-{i}.qcow2", GiB, "qcow2", backing=base_path)), 0)
        data = conn.storagePoolLookupByName("data")
        for i in range(5):
            data.createXML(X.to_string(volume_element(f"disk-{i}.raw", 64 * 1024**2, "raw")), 0)
        for name, mode, third in (("natnet", "nat", 50), ("routed", "route", 51), ("isolated", None, 52)):
            net = conn.networkDefineXML(X.to_string(network_element(name, mode, third)))
            net.setAutostart(1)
            net.create()
        kernel = "/boot/vmlinuz"  # a domain's definition need not boot to be backed up
        for i in range(2):
            spec = DomainSpec(name=f"vm{i}", boot=KernelBoot(kernel=kernel),
                              disks=[DiskSpec(target="vda", pool="images", volume=f"linked-{i}.qcow2", format="qcow2"),
                                     DiskSpec(target="vdb", pool="data", volume=f"disk-{i}.raw")],
                              nics=[NicSpec(network="natnet", mac=f"52:54:00:00:0b:0{i}"),
                                    NicSpec(network="isolated", mac=f"52:54:00:00:0c:0{i}")])
            conn.defineXML(spec.to_xml()).setAutostart(i)
    finally:
        conn.close()
    yield lab
    lab.down()


def _field(root, path):
    node = root.find(path)
    return None if node is None else X.to_string(node)


def test_backup_delete_everything_restore_gives_back_every_object(rich_lab, tmp_path):
    conn = libvirt.open(rich_lab.uri)
    before = host_state(conn)
    assert len([k for k in before if k.startswith("vol/")]) == 12
    archive = tmp_path / "host.tar.gz"
    made = run_cli("backup", "create", "-o", str(archive), uri=rich_lab.uri)
    assert made.returncode == 0, made.stderr
    assert "2 pools, 12 volumes, 4 networks, 2 domains" in made.stdout

    delete_everything(conn)
    assert conn.listAllStoragePools() == [] and conn.listAllDomains() == []

    restored = run_cli("backup", "restore", str(archive), uri=rich_lab.uri)
    assert restored.returncode == 0, restored.stderr
    after = host_state(conn)
    assert after.keys() == before.keys()
    for key in before:
        if key.startswith("vol/"):  # allocation and timestamps differ; configuration must not
            old, new = X.parse(before[key]), X.parse(after[key])
            for field in ("name", "capacity", "target/format", "backingStore/path", "target/path"):
                assert _field(old, field) == _field(new, field), (key, field)
        else:
            assert after[key] == before[key], key
    assert [d.name() for d in conn.listAllDomains() if d.autostart()] == ["vm1"]

    again = run_cli("backup", "restore", str(archive), uri=rich_lab.uri)
    assert again.returncode == 0 and "0 restored" in again.stdout  # converged: nothing to do
    conn.close()


def test_each_xml_file_is_what_virsh_define_takes(rich_lab, tmp_path):
    run_cli("backup", "create", "-o", str(tmp_path / "dir"), uri=rich_lab.uri)
    manifest = json.loads((tmp_path / "dir" / "manifest.json").read_text())
    conn = libvirt.open(rich_lab.uri)
    net = conn.networkLookupByName("routed")
    assert (tmp_path / "dir" / "network" / "routed.xml").read_text() == net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    assert {"kind": "domain", "name": "vm0", "autostart": False}.items() <= \
        next(e for e in manifest["objects"] if e["name"] == "vm0").items()
    conn.close()


def test_collision_is_refused_unless_replace_and_diff_shows_drift(rich_lab, tmp_path):
    archive = tmp_path / "b.tar.gz"
    run_cli("backup", "create", "-o", str(archive), uri=rich_lab.uri)
    conn = libvirt.open(rich_lab.uri)
    net = conn.networkLookupByName("routed")
    # drift made behind virtops' back: a static host added with libvirt directly
    host_xml = X.to_string(X.element("host", mac="52:54:00:00:33:99", ip="10.51.0.99"))
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml,
               libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE)
    shown = run_cli("backup", "diff", str(archive), uri=rich_lab.uri)
    assert shown.returncode == 0
    assert "differs" in shown.stdout and "network/routed" in shown.stdout and "10.51.0.99" in shown.stdout

    before = host_state(conn)
    refused = run_cli("backup", "restore", str(archive), uri=rich_lab.uri)
    assert refused.returncode == 1
    assert "network/routed" in refused.stderr and "--replace" in refused.stderr
    assert host_state(conn) == before

    replaced = run_cli("backup", "restore", "--replace", "--only", "networks", str(archive), uri=rich_lab.uri)
    assert replaced.returncode == 0, replaced.stderr
    assert "10.51.0.99" not in conn.networkLookupByName("routed").XMLDesc(0)
    assert run_cli("backup", "diff", str(archive), uri=rich_lab.uri).stdout.strip() == "no differences"
    conn.close()


@pytest.mark.parametrize("damage", ["checksum", "missing", "xml", "not-an-archive"])
def test_corrupt_archive_is_refused_before_anything_changes(rich_lab, tmp_path, damage):
    pristine = tmp_path / "pristine"
    run_cli("backup", "create", "-o", str(pristine), uri=rich_lab.uri)
    good = tmp_path / "damaged"
    shutil.copytree(pristine, good)
    conn = libvirt.open(rich_lab.uri)
    conn.networkLookupByName("isolated").destroy()
    conn.networkLookupByName("isolated").undefine()  # something a restore would re-create
    before = host_state(conn)
    target = good / "network" / "natnet.xml"
    if damage == "checksum":
        target.write_text(target.read_text().replace("natnet", "natnet2"))
    elif damage == "missing":
        target.unlink()
    elif damage == "xml":
        manifest = json.loads((good / "manifest.json").read_text())
        target.write_text("<network><name>broken")
        entry = next(e for e in manifest["objects"] if e["file"] == "network/natnet.xml")
        entry["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
        (good / "manifest.json").write_text(json.dumps(manifest))
    source = good
    if damage == "not-an-archive":
        source = tmp_path / "junk.tar.gz"
        source.write_bytes(b"\x1f\x8b not really gzip")
    result = run_cli("backup", "restore", str(source), uri=rich_lab.uri)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert host_state(conn) == before
    assert run_cli("backup", "restore", "--only", "networks", str(pristine), uri=rich_lab.uri).returncode == 0
    conn.close()


def test_volume_data_is_backed_up_sparsely_and_restored_byte_identical(rich_lab, tmp_path):
    conn = libvirt.open(rich_lab.uri)
    image = tmp_path / "data.img"
    with image.open("wb") as f:  # 64 MiB volume holding 4 MiB of data in two places
        f.truncate(64 * 1024**2)
        f.seek(1024**2)
        f.write(os.urandom(2 * 1024**2))
        f.seek(40 * 1024**2)
        f.write(os.urandom(2 * 1024**2))
    assert run_cli("vol", "upload", "data/disk-4.raw", str(image), uri=rich_lab.uri).returncode == 0
    archive = tmp_path / "with-data.tar.gz"
    made = run_cli("backup", "create", "-o", str(archive), "--with-data", "data/disk-4.raw", uri=rich_lab.uri)
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_size < 6 * 1024**2  # the holes were not stored

    conn.storagePoolLookupByName("data").storageVolLookupByName("disk-4.raw").delete(0)
    restored = run_cli("backup", "restore", "--only", "volumes", str(archive), uri=rich_lab.uri)
    assert restored.returncode == 0, restored.stderr
    assert "restored volume/data/disk-4.raw" in restored.stdout

    back = tmp_path / "back.img"
    assert run_cli("vol", "download", "data/disk-4.raw", str(back), uri=rich_lab.uri).returncode == 0
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(image.read_bytes()).digest()
    conn.close()
