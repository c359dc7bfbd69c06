"""Logical (LVM) and disk pools for real, on loop devices inside lab hosts, through the CLI and specs.

Each test disk is a sparse file attached to a loop device of its own (detached by that device when
the module ends, whatever happened). A lab's LVM reads the lab's own configuration (lab/lvm.py,
bound over /etc/lvm in its mount namespace), which sees only the loop device given to it, so the
machine's LVM state (`vgs`, `pvs`, `lvs`, /etc/lvm, /run/lvm, /run/lock/lvm) and its loop devices
are checked to be exactly as before once the module is done.

The pools move from lab A to a fresh lab B by their backup, with their disks, as a SAN disk would
move: a restore never builds a logical or disk pool (that would wipe what the device holds), so
the device that holds the volume group and the partition table goes with it (A lets go of it
first). On lab B the spec exported on A then makes the same pools again (apply), and deleting
them leaves nothing on the disks.

What this machine cannot do, and so is not here: a logical volume. This kernel has no
device-mapper (no `device-mapper` in /proc/devices, no /dev/mapper/control), so LVM cannot
activate an LV and libvirt's volume create in a logical pool fails (libvirt then removes the LV
again); the test checks that failure is one sentence that says so and changes nothing. On a
kernel with device-mapper that test fails on purpose, so that it is extended with a real LV
(created, listed with its capacity, attached, exported, restored).

Nor can libvirt 9.0 delete one partition of a loop device: it removes a partition by the number
after the disk's name in the partition's name, "p1" of loop1p1, which parted refuses. So the disk
pool's partition goes with its partition table when the pool is deleted, and the kernel lists
/dev/loop1p1 until the loop device is detached (this kernel reads no partition table itself).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from tests.helpers import cli_ok, define_small_domain, fresh_lab, host_state, run_cli

SUFFIX = os.getpid() % 100000
VG = f"vg_lvmtest{SUFFIX}"
DISK_BYTES = 64 << 20
PARTITION = "16MiB"  # virtops' size syntax
QUIET_LVM = {"LVM_SUPPRESS_FD_WARNINGS": "1"}  # the test's own descriptors are none of LVM's business
HAS_DEVICE_MAPPER = "device-mapper" in Path("/proc/devices").read_text()


# -- the machine's LVM state, before and after -----------------------------------------------------
def machine_lvm_state() -> dict:
    """What the machine's own LVM shows and holds. Read only while no lab VG is visible: the
    machine's `vgs` writes a metadata backup into /etc/lvm for every VG it sees."""
    state = {}
    for command in ("vgs", "pvs", "lvs"):
        done = subprocess.run([command, "--noheadings"], capture_output=True, text=True, env={**os.environ, **QUIET_LVM})
        state[command] = (done.returncode, done.stdout)
    state["losetup"] = subprocess.run(["losetup", "--list", "--noheadings"], capture_output=True, text=True).stdout
    state["/etc/lvm"] = _tree("/etc/lvm", contents=True)
    for runtime in ("/run/lvm", "/run/lock/lvm"):  # their files' contents are rewritten by every command
        state[runtime] = sorted(_tree(runtime, contents=False))
    return state


def _tree(root: str, contents: bool) -> dict[str, str]:
    found = {}
    for path in sorted(Path(root).rglob("*")) if Path(root).exists() else []:
        mode = oct(path.lstat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if contents and path.is_file() else ""
        found[str(path)] = f"{mode} {digest}"
    return found


@pytest.fixture(scope="module")
def machine_before():
    """The machine's LVM state before the module; after it (every lab down, every loop device
    detached) it must be exactly the same, also when a test failed midway."""
    before = machine_lvm_state()
    yield before
    assert machine_lvm_state() == before


# -- loop devices and labs -------------------------------------------------------------------------
@contextlib.contextmanager
def loop_device(image: Path):
    """A sparse file of DISK_BYTES on a loop device of its own (with partition scanning, for the
    partitions of a disk pool); detached by that device afterwards, and the file removed. No LV
    can be active on it here (no device-mapper, see the module's docstring) to hold it."""
    with open(image, "wb") as disk:
        disk.truncate(DISK_BYTES)
    try:
        device = subprocess.run(["losetup", "--find", "--show", "--partscan", str(image)],
                                check=True, capture_output=True, text=True).stdout.strip()
        try:
            yield device
        finally:
            subprocess.run(["losetup", "--detach", device], check=True)
    finally:
        image.unlink()


@pytest.fixture(scope="module")
def disks(machine_before, tmp_path_factory):
    """Three loop devices: one for the volume group, one for the partition table, and one that
    another tool gave a partition table, which no pool may build over."""
    folder = tmp_path_factory.mktemp("lvm")
    with loop_device(folder / "pv.img") as pv, loop_device(folder / "disk.img") as disk, \
            loop_device(folder / "used.img") as used:
        subprocess.run(["parted", "-s", used, "mklabel", "gpt"], check=True, capture_output=True)
        yield pv, disk, used


@pytest.fixture(scope="module")
def labs(disks):
    """Lab A, whose LVM sees the PV's loop device, and a fresh lab B that sees none yet."""
    source = fresh_lab(f"pytest-lvma-{SUFFIX}")
    try:
        target = fresh_lab(f"pytest-lvmb-{SUFFIX}")
        try:
            source.give_lvm_devices([disks[0]])
            yield source, target
        finally:
            target.down()
    finally:
        source.down()


def lab_lvm(lab, *args: str) -> str:
    """An LVM report as the lab's own LVM sees it (its configuration, its locks), in bytes."""
    done = subprocess.run([args[0], "--noheadings", "--units", "b", "--nosuffix", *args[1:]], capture_output=True,
                          text=True, env={**os.environ, **QUIET_LVM, "LVM_SYSTEM_DIR": str(lab.lvm_dir)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(uri: str, *args: str):
    return json.loads(cli_ok(uri, *args, "--json"))


def state_of(uri: str) -> dict[str, str]:
    conn = libvirt.open(uri)
    try:
        return host_state(conn)
    finally:
        conn.close()


def refused(uri: str, *args: str) -> str:
    """Run a command that must be refused and change nothing; returns its one-line message."""
    before = state_of(uri)
    result = run_cli(*args, uri=uri)
    assert result.returncode != 0, result.stdout
    assert state_of(uri) == before
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    return message


def without_uuids(state: dict[str, str]) -> dict[str, str]:
    return {key: re.sub(r"<uuid>[^<]*</uuid>", "", xml) for key, xml in state.items()}


def partition_of(disk: str) -> str:
    return f"{Path(disk).name}p1"  # how the kernel and libvirt name a loop device's first partition


# -- the tests, in order: build on lab A, move to lab B, delete there --------------------------------
CREATE_GUESTS = ("pool", "create", "guests", "--type", "logical", "--source-name", VG, "--build")


def test_a_create_killed_after_its_build_leaves_what_the_next_run_removes(labs, disks):
    """Killed (SIGKILL) just after vgcreate: the volume group and the pool stay; the same command
    run again (the next test) removes them first and finishes the job."""
    source, _target = labs
    killed = subprocess.run([sys.executable, "-m", "virtops", "-c", source.uri, *CREATE_GUESTS, "--device", disks[0]],
                            capture_output=True, text=True, env={**os.environ, "VIRTOPS_FAULT_KILL_AT": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert lab_lvm(source, "vgs", "-o", "vg_name").split() == [VG]
    assert [p["name"] for p in as_json(source.uri, "pool", "list", "--all")] == ["guests"]


def test_logical_pool_is_built_on_its_loop_device(labs, disks):
    source, _target = labs
    pv = disks[0]
    out = cli_ok(source.uri, *CREATE_GUESTS, "--device", pv)
    assert f"built (volume group {VG} on {pv}), started, autostart" in out
    size, free = lab_lvm(source, "vgs", "-o", "vg_size,vg_free", VG).split()
    assert lab_lvm(source, "pvs", "-o", "pv_name,vg_name").split() == [pv, VG]
    info = as_json(source.uri, "pool", "info", "guests")
    assert (info["type"], info["state"], info["source_name"], info["source_device"], info["target"]) == \
        ("logical", "running", VG, pv, f"/dev/{VG}")
    assert (info["capacity"], info["available"], info["allocation"]) == (int(size), int(free), int(size) - int(free))


def test_a_logical_volume_needs_device_mapper(labs):
    source, _target = labs
    assert not HAS_DEVICE_MAPPER, "this kernel has device-mapper: test a real LV here (see the module's docstring)"
    message = refused(source.uri, "vol", "create", "guests", "lv1", PARTITION)
    assert message == ("error: creating volume guests/lv1 failed: the host's kernel has no device-mapper "
                       "(/dev/mapper/control: open failed), which LVM needs for a logical volume; nothing was created.")
    assert lab_lvm(source, "lvs", VG) == ""


def test_disk_pool_gets_a_partition_table_and_a_partition_as_volume(labs, disks):
    source, _target = labs
    disk = disks[1]
    out = cli_ok(source.uri, "pool", "create", "whole", "--type", "disk", "--device", disk, "--format", "dos", "--build")
    assert f"built (dos partition table on {disk})" in out
    assert "Partition Table: msdos" in subprocess.run(["parted", "-s", disk, "print"], capture_output=True,
                                                      text=True).stdout
    cli_ok(source.uri, "vol", "create", "whole", partition_of(disk), PARTITION)
    [volume] = as_json(source.uri, "vol", "list", "whole")
    size = int(subprocess.run(["blockdev", "--getsize64", f"{disk}p1"], check=True, capture_output=True,
                              text=True).stdout)
    assert (volume["name"], volume["path"], volume["capacity"], volume["allocation"]) == \
        (partition_of(disk), f"{disk}p1", size, size)
    assert size >= 16 << 20


def test_building_on_a_device_that_holds_data_is_refused(labs, disks):
    """libvirt builds a volume group only on an empty device; the pool virtops defined first is undone."""
    source, _target = labs
    used = disks[2]
    source.give_lvm_devices([disks[0], used])
    try:
        message = refused(source.uri, "pool", "create", "other", "--type", "logical", "--source-name", "vg_other",
                          "--device", used, "--build")
    finally:
        source.give_lvm_devices([disks[0]])
    assert message.startswith(f"error: building pool other (volume group vg_other on {used}) failed: "), message
    assert message.endswith("nothing was kept (undone: defined pool other)."), message
    assert "Partition Table: gpt" in subprocess.run(["parted", "-s", used, "print"], capture_output=True, text=True).stdout
    assert lab_lvm(source, "vgs", "-o", "vg_name").split() == [VG]


def test_the_partition_is_attached_to_a_vm_definition(labs, disks):
    source, _target = labs
    define_small_domain(source.uri, "lvm-vm")
    cli_ok(source.uri, "vm", "attach-disk", "lvm-vm", f"whole/{partition_of(disks[1])}", "--config")
    [disk] = as_json(source.uri, "vm", "info", "lvm-vm")["disks"]
    assert (disk["pool"], disk["volume"]) == ("whole", partition_of(disks[1]))


def test_export_then_plan_says_no_changes(labs, tmp_path_factory):
    source, _target = labs
    spec = tmp_path_factory.getbasetemp() / "lvm-export.yaml"
    cli_ok(source.uri, "export", "-o", str(spec))
    text = spec.read_text()
    assert "xml:" not in text and f"source_name: {VG}" in text and "type: disk" in text
    assert "No changes" in cli_ok(source.uri, "plan", "-f", str(spec))


def test_backup_restored_on_a_fresh_lab_gives_the_same_pools(labs, disks, tmp_path_factory):
    source, target = labs
    backup = tmp_path_factory.getbasetemp() / "lvm-backup.tar.gz"
    cli_ok(source.uri, "backup", "create", "-o", str(backup))
    exported = cli_ok(source.uri, "export")
    before = {key: xml for key, xml in state_of(source.uri).items() if key != "net/default"}
    for pool in ("guests", "whole"):  # lab A lets go of the disks
        cli_ok(source.uri, "pool", "stop", pool)
    source.give_lvm_devices([])
    target.give_lvm_devices([disks[0]])
    cli_ok(target.uri, "backup", "restore", str(backup), "--only", "pools", "--only", "volumes", "--only", "vms")
    after = {key: xml for key, xml in state_of(target.uri).items() if key != "net/default"}
    assert after.keys() == before.keys() and after == before
    assert cli_ok(target.uri, "export") == exported


def test_the_export_applied_where_the_disks_are_gives_the_same_pools(labs, tmp_path_factory):
    """The spec's face of the move: lab B forgets the pools and the VM (their storage stays, as
    --keep-data says), then the spec exported on lab A makes them again, on what the disks hold."""
    _source, target = labs
    spec = tmp_path_factory.getbasetemp() / "lvm-export.yaml"
    before = without_uuids(state_of(target.uri))
    disks_before = as_json(target.uri, "vm", "info", "lvm-vm")["disks"]
    cli_ok(target.uri, "vm", "delete", "lvm-vm")
    for pool in ("guests", "whole"):
        assert "undefined" in cli_ok(target.uri, "pool", "delete", pool, "--keep-data")
    cli_ok(target.uri, "apply", "-f", str(spec))
    assert "No changes" in cli_ok(target.uri, "plan", "-f", str(spec))
    after = without_uuids(state_of(target.uri))  # made anew: new UUIDs
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != "dom/lvm-vm"} == {k: v for k, v in before.items() if k != "dom/lvm-vm"}
    assert as_json(target.uri, "vm", "info", "lvm-vm")["disks"] == disks_before  # the rest is the spec's VM


def test_deleting_the_pools_leaves_nothing_on_their_disks(labs, disks):
    _source, target = labs
    pv, disk, _used = disks
    assert "in use: VM(s) lvm-vm" in refused(target.uri, "pool", "delete", "whole", "--with-volumes")
    assert "holds 1 volume(s)" in refused(target.uri, "pool", "delete", "whole", "--force")
    out = cli_ok(target.uri, "pool", "delete", "whole", "--with-volumes", "--force")
    assert (f"deleted 0 volume(s), stopped, removed the dos partition table on {disk} and with it partition(s) "
            f"{partition_of(disk)} (the kernel lists them until the disk is read again), undefined") in out
    assert "unrecognised disk label" in subprocess.run(["parted", "-s", disk, "print"], capture_output=True,
                                                       text=True).stderr
    out = cli_ok(target.uri, "pool", "delete", "guests", "--with-volumes")
    assert f"removed the volume group {VG} on {pv}" in out
    assert lab_lvm(target, "pvs") == ""
    assert [p["name"] for p in as_json(target.uri, "pool", "list", "--all")] == []
