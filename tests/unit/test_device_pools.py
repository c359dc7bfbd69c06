"""Logical and disk pools on libvirt's test driver: building one only when asked, undoing that build,
deleting its storage only with --with-volumes, the format of its volumes, and a lab's LVM filter.
The same steps for real, on loop devices, are tests/lab/test_lvm_pools.py; libvirt's test driver
writes no device, so here its build and delete are recorded instead of run."""
from __future__ import annotations

import libvirt
import pytest

from virtops.base.errors import InvalidInput, VirtopsError
from virtops.lab.lvm import config_text
from virtops.ops.pool import PoolSpec, _removable_partition
from virtops.xmlmodels.pool import PoolXml

GUESTS = dict(name="guests", type="logical", source_name="vg_guests", device="/dev/vdc")
WHOLE = dict(name="whole", type="disk", device="/dev/vdd", format="gpt")


@pytest.fixture
def device_calls(test_host, tmp_path, monkeypatch):
    """(call, pool) for every build and delete of a pool: on a device they would write it."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(libvirt.virStoragePool, "build", lambda pool, flags=0: calls.append(("build", pool.name())))
    monkeypatch.setattr(libvirt.virStoragePool, "delete", lambda pool, flags=0: calls.append(("delete", pool.name())))
    return calls


def test_a_device_pool_is_built_only_when_asked(test_host, device_calls):
    plain = test_host.pools.create(PoolSpec(**WHOLE))
    built = test_host.pools.create(PoolSpec(**GUESTS), build_device=True)
    assert plain.steps == ["defined", "started", "autostart"]
    assert built.steps == ["defined", "built (volume group vg_guests on /dev/vdc)", "started", "autostart"]
    assert device_calls == [("build", "guests")]


@pytest.mark.parametrize("spec, expected", [
    (dict(name="d", target="/var/lib/libvirt/d"), "applies only to logical and disk pools; a dir pool is always built."),
    (dict(name="g", type="logical", source_name="vg0"), "a logical pool is built on its physical volumes; give device."),
])
def test_build_is_refused_where_it_means_nothing(test_host, device_calls, spec, expected):
    with pytest.raises(InvalidInput) as err:
        test_host.pools.create(PoolSpec(**spec), build_device=True)
    assert str(err.value) == f"build: {expected}"
    assert device_calls == [] and not test_host.pools.exists(spec["name"])


def test_a_failed_start_undoes_the_build(test_host, device_calls, monkeypatch):
    def refuse(pool, flags=0):
        raise libvirt.libvirtError("cannot find any matching source devices")

    monkeypatch.setattr(libvirt.virStoragePool, "create", refuse)
    with pytest.raises(VirtopsError) as err:
        test_host.pools.create(PoolSpec(**WHOLE), build_device=True)
    assert str(err.value).endswith("nothing was kept (undone: built pool whole (gpt partition table on /dev/vdd), "
                                   "defined pool whole).")
    assert device_calls == [("build", "whole"), ("delete", "whole")]
    assert not test_host.pools.exists("whole")


def test_deleting_a_device_pool_keeps_its_storage_unless_with_volumes(test_host, device_calls):
    for spec in (GUESTS, WHOLE):
        test_host.pools.create(PoolSpec(**spec))
    assert test_host.pools.delete("guests") == [
        "stopped", "kept the volume group vg_guests on /dev/vdc (deleting the pool with its volumes removes it)", "undefined"]
    assert device_calls == []
    assert test_host.pools.delete("whole", with_volumes=True) == [
        "deleted 0 volume(s)", "stopped", "removed the gpt partition table on /dev/vdd", "undefined"]
    assert device_calls == [("delete", "whole")]


def test_a_volume_of_a_device_pool_is_raw(test_host, device_calls):
    """libvirt takes a disk pool's volume format for a partition type (and refuses raw): raw is none there."""
    test_host.pools.create(PoolSpec(**WHOLE))
    with pytest.raises(InvalidInput) as err:
        test_host.volumes.create("whole", "vdd1", "16M", format="qcow2")
    assert str(err.value) == "format: a volume of disk pool whole is a partition, raw; give no format."
    created = test_host.volumes.create("whole", "vdd1", "16M")
    assert created.volume.format == "none"


def test_a_lab_lvm_sees_only_its_devices(tmp_path):
    text = config_text("lab1", ["/dev/loop3", "/dev/loop12"], tmp_path / "lock")
    assert 'filter = [ "a|^/dev/loop3$|", "a|^/dev/loop12$|", "r|.*|" ]' in text
    assert 'global_filter = [ "a|^/dev/loop3$|", "a|^/dev/loop12$|", "r|.*|" ]' in text
    assert f'locking_dir = "{tmp_path / "lock"}"' in text
    assert 'filter = [ "r|.*|" ]' in config_text("lab1", [], tmp_path)
    with pytest.raises(InvalidInput) as err:
        config_text("lab1", ["/dev/loop3|.*"], tmp_path)
    assert str(err.value) == "device: '/dev/loop3|.*' is not a device path; give one such as /dev/loop3."


@pytest.mark.parametrize("disk, partition, removable", [
    ("/dev/vdd", "vdd1", True), ("/dev/sdb", "sdb12", True), ("/dev/loop1", "loop1p1", False),
    ("/dev/nvme0n1", "nvme0n1p2", False),
])
def test_partitions_libvirt_cannot_remove_one_by_one(disk, partition, removable):
    """libvirt 9.0 hands parted "p1" for loop1p1; those go with the partition table instead."""
    pool = PoolXml().update(type="disk", name="whole", source=dict(device=disk), target="/dev")
    assert _removable_partition(pool, partition) is removable
