"""Pool and volume XML built with lxml and validated against libvirt's schemas; input checks that
need no host."""
from __future__ import annotations

import pytest

from virtops.xmlmodels import doc as X
from virtops.base.errors import InvalidInput
from virtops.ops.pool import PoolSpec, check_target, parse_sources
from virtops.ops.volume import VolumeSpec, check_volume_name, split_volume_ref


def test_handbook_dir_pool_xml():
    spec = PoolSpec(name="test", target="/var/lib/libvirt/test", mode="700", owner="root", group="root").checked()
    root = spec.to_element()
    X.validate(root, "storagepool")
    assert root.get("type") == "dir" and root.findtext("name") == "test"
    assert root.findtext("target/path") == "/var/lib/libvirt/test"
    assert [root.findtext(f"target/permissions/{k}") for k in ("mode", "owner", "group")] == ["0700", "0", "0"]


def test_handbook_netfs_pool_xml():
    spec = PoolSpec(name="nfs", type="netfs", host="192.168.0.254", source_path="/nfs",
                    target="/var/lib/libvirt/nfs").checked()
    root = spec.to_element()
    X.validate(root, "storagepool")
    assert root.find("source/host").get("name") == "192.168.0.254"
    assert root.find("source/dir").get("path") == "/nfs"
    assert root.find("source/format").get("type") == "auto"
    assert root.find("target/permissions") is None


def test_fs_pool_xml_with_label():
    spec = PoolSpec(name="disk", type="fs", device="/dev/vdb1", format="ext4", target="/var/lib/libvirt/disk",
                    label="system_u:object_r:virt_image_t:s0").checked()
    root = spec.to_element()
    X.validate(root, "storagepool")
    assert root.find("source/device").get("path") == "/dev/vdb1"
    assert root.findtext("target/permissions/label") == "system_u:object_r:virt_image_t:s0"


@pytest.mark.parametrize("values, field", [
    ({"name": "x", "target": "/etc"}, "target"),
    ({"name": "x", "target": "/dev/shm/x"}, "target"),
    ({"name": "x", "target": "//"}, "target"),
    ({"name": "x", "target": "images"}, "target"),
    ({"name": "x"}, "target"),
    ({"name": "x", "target": "/srv/x", "mode": "0888"}, "mode"),
    ({"name": "x", "target": "/srv/x", "mode": "07777"}, "mode"),
    ({"name": "x", "target": "/srv/x", "owner": "nobody-at-all"}, "owner"),
    ({"name": "x", "target": "/srv/x", "label": "not a context"}, "label"),
    ({"name": "x", "target": "/srv/x", "device": "/dev/sdb"}, "device"),
    ({"name": "x", "type": "fs", "target": "/srv/x", "device": "sdb"}, "device"),
    ({"name": "x", "type": "netfs", "target": "/srv/x", "host": "bad host", "source_path": "/nfs"}, "host"),
    ({"name": "x", "type": "netfs", "target": "/srv/x", "host": "h", "source_path": "nfs"}, "source_path"),
    ({"name": "", "target": "/srv/x"}, "name"),
    ({"name": ".x", "target": "/srv/x"}, "name"),
])
def test_pool_input_refusals(values, field):
    with pytest.raises(InvalidInput) as err:
        PoolSpec(**values).checked()
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ") and str(err.value).endswith(".")


def test_targets_are_normalised():
    assert check_target("/srv//pools/./a/") == "/srv/pools/a"
    assert check_target("/var/lib/libvirt/images/x") == "/var/lib/libvirt/images/x"


def test_numeric_owner_and_group_need_no_lookup():
    spec = PoolSpec(name="x", target="/srv/x", owner="107", group="108").checked()
    assert (spec.owner, spec.group) == (107, 108)


def test_volume_xml_raw_and_linked_qcow2():
    raw = VolumeSpec(pool="test", name="test", capacity=1048576000).to_element()
    X.validate(raw, "storagevol")
    assert raw.findtext("capacity") == "1048576000" and raw.find("target/format").get("type") == "raw"
    linked = VolumeSpec(pool="test", name="c", capacity=1, format="qcow2", backing_path="/var/lib/libvirt/test/base",
                        backing_format="raw").to_element()
    X.validate(linked, "storagevol")
    assert linked.findtext("backingStore/path") == "/var/lib/libvirt/test/base"


@pytest.mark.parametrize("name", ["", "a/b", ".x", "..", "a b", "x" * 256])
def test_volume_name_refusals(name):
    with pytest.raises(InvalidInput) as err:
        check_volume_name(name)
    assert err.value.field == "name"


@pytest.mark.parametrize("ref", ["test", "/x", "test/", "a/b/c", ""])
def test_volume_ref_refusals(ref):
    with pytest.raises(InvalidInput):
        split_volume_ref(ref)


def test_parse_sources_reads_libvirt_answer():
    text = ("<sources><source><host name='192.168.0.254'/><dir path='/nfs'/><format type='nfs'/></source>"
            "<source><host name='192.168.0.254'/><dir path='/other'/><format type='nfs'/></source></sources>")
    found = parse_sources(text, "192.168.0.254")
    assert [(s.host, s.path, s.format) for s in found] == [("192.168.0.254", "/nfs", "nfs"),
                                                         ("192.168.0.254", "/other", "nfs")]
