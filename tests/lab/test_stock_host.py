"""A lab host runs QEMU as a stock Debian host does (as libvirt-qemu, DAC ownership), and virtops
checks before attach, create and start that QEMU can reach every disk, kernel and initrd: the
handbook's pool (root:root 0700) is refused with the fix named, the host unchanged; the fix
(`virtops pool set test --mode 0711`) makes `vm start` boot a real guest."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import cli_ok, host_state, run_cli
from tests.lab.test_handbook_guest import _pool, _volume, remove_domains_and_pool
from virtops.ops.access import HostView, unreadable
from virtops.ops.domain import DiskSpec, DomainSpec, KernelBoot
from virtops.testguest.image import kernel_cmdline, wait_for_report

POOL = "stock"
MIB = 1024**2


@pytest.fixture
def stock_pool(host):
    _pool(host.conn, POOL)  # the handbook's pool: mode 0700, owner root:root
    _volume(host.conn, "sys", 16 * MIB, pool=POOL)
    _volume(host.conn, "data", 16 * MIB, pool=POOL)
    yield host
    remove_domains_and_pool(host.conn, POOL)


def _boot(image) -> str:
    return f"kernel={image.kernel},initrd={image.initrd},cmdline={kernel_cmdline('shell')}"


def _refused(lab, conn, *args: str) -> str:
    before = host_state(conn)
    result = run_cli(*args, uri=lab.uri)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert host_state(conn) == before, args
    return message


def test_qemu_runs_as_libvirt_qemu_as_debian_ships_it(host):
    view = HostView.of(host)
    assert (view.who.name, view.who.uid) == ("libvirt-qemu", 64055)
    assert view.files is not None and view.files.root.startswith("/proc/")


def test_the_handbook_pool_is_refused_with_its_fix_and_the_fix_boots_the_guest(lab, stock_pool, guest_image):
    conn = stock_pool.conn
    fix = f"`virtops pool set {POOL} --mode 0711`"
    expected = (f"QEMU runs as libvirt-qemu (64055:64055) and cannot reach disk {POOL}/sys (vda): the directory "
                f"/var/lib/libvirt/{POOL} of pool {POOL} has mode 0700, owner 0:0; let QEMU through with {fix}.")
    message = _refused(lab, conn, "vm", "create", "stock", "--memory", "128M", "--disk", f"{POOL}/sys",
                       "--boot", _boot(guest_image))
    assert message == f"error: --disk: {expected}"
    assert fix in _refused(lab, conn, "vm", "create", "stock", "--memory", "128M", "--new-disk", f"{POOL}:8M")

    # A VM defined behind virtops's back (virsh define) with its disk in the pool: start is refused.
    spec = DomainSpec(name="stock", virt_type=stock_pool.virt_type(), memory_mib=128,
                      boot=KernelBoot(kernel=str(guest_image.kernel), initrd=str(guest_image.initrd),
                                      cmdline=kernel_cmdline("shell")),
                      disks=[DiskSpec(target="vda", pool=POOL, volume="sys")])
    conn.defineXML(spec.to_xml())
    assert _refused(lab, conn, "vm", "start", "stock") == f"error: vm: {expected}"
    message = _refused(lab, conn, "vm", "attach-disk", "stock", f"{POOL}/data")
    assert f"cannot reach disk {POOL}/data (vdb)" in message and fix in message

    cli_ok(lab.uri, "pool", "set", POOL, "--mode", "0711")
    cli_ok(lab.uri, "vm", "attach-disk", "stock", f"{POOL}/data")
    cli_ok(lab.uri, "vm", "start", "stock")
    console = stock_pool.vms.console("stock")
    try:
        report = wait_for_report(console, lambda r: "vdb" in r.disks, 120)
        assert report.disks["vda"] == report.disks["vdb"] == 16 * MIB
    finally:
        console.close()
    qemu = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_qemu_of(p, "stock")]
    assert qemu and all(_uid(p) == 64055 for p in qemu)


def _is_qemu_of(proc: Path, vm: str) -> bool:
    try:
        return f"guest={vm},".encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def _uid(proc: Path) -> int:
    line = next(l for l in (proc / "status").read_text().splitlines() if l.startswith("Uid:"))
    return int(line.split()[1])


def test_pool_create_with_a_mode_qemu_cannot_pass_warns(lab, host):
    target = "/var/lib/libvirt/closed"
    result = run_cli("pool", "create", "closed", "--target", target, "--mode", "0700", uri=lab.uri)
    try:
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == (
            f"warning: QEMU runs as libvirt-qemu (64055:64055) and cannot reach the disks in it: the directory "
            f"{target} of pool closed has mode 0700, owner 0:0; let QEMU through with "
            "`virtops pool set closed --mode 0711`.")
        data = json.loads(cli_ok(lab.uri, "pool", "set", "closed", "--mode", "0711", "--json"))
        assert data["warnings"] == []
        opened = run_cli("pool", "create", "opened", "--target", "/var/lib/libvirt/opened", "--mode", "0711", uri=lab.uri)
        assert opened.returncode == 0 and opened.stderr == ""
    finally:
        for name in ("closed", "opened"):
            if host.pools.exists(name):
                host.pools.delete(name)


def test_kernel_and_initrd_must_exist_and_be_readable_by_qemu(lab, host, guest_image):
    conn = host.conn
    missing = _refused(lab, conn, "vm", "create", "k", "--memory", "128M", "--boot", "kernel=/nonexistent/vmlinuz")
    assert missing == "error: --boot: kernel /nonexistent/vmlinuz is not a file on the host; give the path of an existing file."
    hidden = Path(tempfile.mkdtemp(prefix="virtops-hidden-", dir="/tmp"))  # mode 0700, root's
    try:
        shutil.copy(guest_image.kernel, hidden / "vmlinuz")
        os.chmod(hidden / "vmlinuz", 0o644)
        message = _refused(lab, conn, "vm", "create", "k", "--memory", "128M", "--boot",
                           f"kernel={hidden / 'vmlinuz'},initrd={guest_image.initrd}")
        assert message == (f"error: --boot: QEMU runs as libvirt-qemu (64055:64055) and cannot read kernel "
                           f"{hidden / 'vmlinuz'}: {hidden} has mode 0700, owner 0:0; let QEMU through with "
                           f"`chmod o+x {hidden}` on the host.")
        # vm set --boot: the same checks, before the definition changes.
        cli_ok(lab.uri, "vm", "create", "k", "--memory", "128M")
        assert _refused(lab, conn, "vm", "set", "k", "--boot", "kernel=/nonexistent/vmlinuz") == missing
        assert _refused(lab, conn, "vm", "set", "k", "--boot", f"kernel={hidden / 'vmlinuz'},initrd={guest_image.initrd}") == message
        cli_ok(lab.uri, "vm", "set", "k", "--boot", f"kernel={guest_image.kernel},initrd={guest_image.initrd}")
    finally:
        shutil.rmtree(hidden)
        if "k" in conn.listDefinedDomains():
            conn.lookupByName("k").undefine()


def test_the_test_guest_cache_is_readable_by_qemu(host, guest_image):
    """The cache directory and its parents are 0755 and the files 0644: QEMU passes and reads."""
    view = HostView.of(host)
    for path in (guest_image.kernel, guest_image.initrd):
        assert unreadable("kernel", str(path), view.files, view.who) is None
        assert all(entry.mode & 0o005 == 0o005 for entry in view.files.parents(str(path)) if entry)
        assert os.stat(path).st_mode & 0o444 == 0o444
