"""Disruptive actions under a running test guest are refused without force (exit 1, one sentence
naming the guest and what it loses, the host unchanged): stopping, deleting or replacing its
network (`net define --replace`, `backup restore --replace`), stopping, deleting or replacing its pool, shrinking or wiping its disk; qcow2 chains are never
written under an overlay in use; `vm delete --remove-storage` never says "deleted" while a
stopped pool keeps the volumes. With force, a network stopped and started again (or replaced)
under the guest gets its NIC re-plugged: the guest obtains a lease again."""
from __future__ import annotations

import ipaddress

import pytest

from tests.helpers import cli_ok, host_state, run_cli
from virtops.base.errors import NeedsOption
from virtops.host import Host
from virtops.testguest.image import kernel_cmdline, wait_for_report

POOL, SPARE_POOL, NET, VM, MAC = "guard", "guard-spare", "g-net", "g-run", "52:54:00:71:00:01"
SUBNET = ipaddress.ip_network("10.71.0.0/24")


@pytest.fixture(scope="module")
def guarded(lab, guest_image):
    """A running test guest (shell mode) with its disk in pool `guard` and its NIC on `g-net`."""
    host = Host(lab.uri)
    uri = lab.uri
    cli_ok(uri, "pool", "create", POOL, "--target", f"/var/lib/libvirt/{POOL}", "--mode", "0711")
    cli_ok(uri, "pool", "create", SPARE_POOL, "--target", f"/var/lib/libvirt/{SPARE_POOL}", "--mode", "0711")
    for name, size, fmt in (("sys", "16M", "raw"), ("base", "8M", "qcow2"), ("data", "8M", "raw")):
        cli_ok(uri, "vol", "create", POOL, name, size, "--format", fmt)
    cli_ok(uri, "vol", "create", POOL, "overlay", "8M", "--backing", f"{POOL}/base")
    cli_ok(uri, "vol", "create", SPARE_POOL, "spare", "8M")
    cli_ok(uri, "net", "create", NET, "--subnet", str(SUBNET))
    cli_ok(uri, "vm", "create", VM, "--memory", "160M", "--disk", f"{POOL}/sys", "--network", f"{NET},mac={MAC}",
           "--boot", f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}",
           "--start")
    console = host.vms.console(VM)
    try:
        wait_for_report(console, _has_lease, 120)
        yield host, console
    finally:
        console.close()
        for dom in host.conn.listAllDomains():
            if dom.name().startswith("g-"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for name in (POOL, SPARE_POOL):
            if not host.pools.info(name).active:
                host.pools.start(name)
            host.pools.delete(name, with_volumes=True, force=True)
        host.networks.delete(NET, force=True)
        host.close()


def _has_lease(report) -> bool:
    return any(n.mac == MAC and n.ip and ipaddress.ip_interface(n.ip).ip in SUBNET for n in report.nics)


def _refused(lab, conn, *args: str, naming: tuple[str, ...]) -> str:
    before = host_state(conn)
    result = run_cli(*args, uri=lab.uri)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for word in naming:
        assert word in message, (args, word, message)
    assert host_state(conn) == before, args
    return message


def test_network_of_a_running_guest_is_not_cut_off_without_force(lab, guarded, tmp_path):
    host, _console = guarded
    conn = host.conn
    stop = _refused(lab, conn, "net", "stop", NET, naming=(f"running guests {VM} ({MAC})", "lose their connection",
                                                           "give --force", "re-plugs their NICs"))
    assert stop.startswith(f"error: network: {NET} carries NICs")
    _refused(lab, conn, "net", "delete", NET, naming=(f"{VM} (running)", "cuts the running ones off", "--force"))
    saved = tmp_path / "g-net.xml"
    saved.write_text(cli_ok(lab.uri, "net", "dumpxml", NET, "--inactive"))
    _refused(lab, conn, "net", "define", str(saved), "--replace",
             naming=("replacing it restarts it", VM, "--force", "virtops then re-plugs"))
    archive = _changed_since_backup(lab, tmp_path)
    _refused(lab, conn, "backup", "restore", "--only", "networks", "--replace", archive,
             naming=(f"network: {NET} carries NICs of running guests {VM} ({MAC})", "replacing it with the backup's",
                     "--force", "virtops then re-plugs"))
    plan = cli_ok(lab.uri, "backup", "restore", "--only", "networks", "--replace", "--dry-run", archive)
    assert f"replace  network/{NET}" in plan and f"stops it under running guests {VM}" in plan, plan
    # The core names its option as the Python API spells it; the CLI turns it into --force.
    with pytest.raises(NeedsOption, match="give force=True to go ahead") as refusal:
        host.networks.stop(NET)
    assert refusal.value.option == "force" and "--force" not in str(refusal.value)


def _changed_since_backup(lab, tmp_path) -> str:
    """A backup of the host, after which the guard network and pool are no longer autostart: a
    restore with --replace replaces them, restarting them."""
    archive = tmp_path / "before.tar.gz"
    archive.unlink(missing_ok=True)
    cli_ok(lab.uri, "net", "autostart", NET)
    cli_ok(lab.uri, "pool", "autostart", POOL)
    cli_ok(lab.uri, "backup", "create", "-o", str(archive))
    cli_ok(lab.uri, "net", "autostart", NET, "--disable")
    cli_ok(lab.uri, "pool", "autostart", POOL, "--disable")
    return str(archive)


def test_forced_stop_and_start_replug_the_running_guest(lab, guarded, tmp_path):
    host, console = guarded
    for restart in (("net", "stop", NET, "--force"), ("net", "start", NET)), \
                   (("net", "define", str(tmp_path / "g-net.xml"), "--replace", "--force"),), \
                   (("backup", "restore", "--only", "networks", "--replace", "--force", str(tmp_path / "before.tar.gz")),):
        (tmp_path / "g-net.xml").write_text(cli_ok(lab.uri, "net", "dumpxml", NET, "--inactive"))
        if restart[0][0] == "backup":
            _changed_since_backup(lab, tmp_path)
        console.read()  # what the guest printed so far is before the restart
        since = len(console.buffer)
        granted = _lease_expiry(host)
        for step in restart:
            cli_ok(lab.uri, *step)
        # Only a re-plugged NIC sees its link come back and asks for a lease again: dnsmasq grants
        # one that expires later than the last, and the guest reports it. A tap left off the new
        # bridge changes nothing the guest can see, and no request reaches dnsmasq.
        assert _has_lease(_report_since(console, since, host, restart))
        assert _renewed_soon(host, granted)
        assert host.conn.lookupByName(VM).isActive()


def _report_since(console, since: int, host, restart):
    from virtops.testguest.image import parse_report
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        console.read()
        try:
            report = parse_report(console.buffer[since:].decode(errors="replace"))
            if report.complete and _has_lease(report):
                return report
        except ValueError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no new lease reported by the guest after {restart}:\n"
                         f"{console.buffer[since:].decode(errors='replace')[-2000:]}\n{_why_no_lease(console, host)}")


def _why_no_lease(console, host) -> str:
    """What the guest's DHCP client and the host's side of the NIC say, for a failure's message."""
    from virtops.testguest.shell import run_in_guest

    try:
        guest = run_in_guest(console, "for f in /run/virtops/*; do echo \"== $f\"; cat $f; done; ps; ip addr; "
                                      "echo SAID-$((1+1))", "SAID-2", 20)
    except Exception as err:  # noqa: BLE001 - a failure's message, not the test
        guest = f"the guest did not answer: {err}"
    nic = [line for line in host.conn.lookupByName(VM).XMLDesc(0).splitlines() if "<interface" in line or
           "<source" in line or "<target dev" in line]
    return f"guest:\n{guest[-3000:]}\nhost NIC: {nic}\nleases: {host.networks.leases(NET)}"


def _lease_expiry(host) -> int:
    return max((lease.expiry_time for lease in host.networks.leases(NET) if lease.mac == MAC), default=0)


def _renewed_soon(host, granted: int, timeout_s: float = 30) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _lease_expiry(host) > granted:
            return True
        time.sleep(0.5)
    return False


def test_pool_and_disks_of_a_running_guest_are_guarded(lab, guarded, tmp_path):
    host, _console = guarded
    conn = host.conn
    _refused(lab, conn, "pool", "stop", POOL, naming=(f"running VM(s) {VM}", "cannot start again", "give --force"))
    _refused(lab, conn, "backup", "restore", "--only", "pools", "--replace", _changed_since_backup(lab, tmp_path),
             naming=(f"pool {POOL} holds disks of running VM(s) {VM}", "replacing it with the backup's", "--force"))
    _refused(lab, conn, "pool", "delete", POOL, "--keep-data", naming=(f"VM(s) {VM}", f"running ones ({VM})", "--force"))
    _refused(lab, conn, "vol", "resize", f"{POOL}/sys", "8M", "--shrink",
             naming=(f"disk of running VM(s) {VM}", "cuts off data", "give --force"))
    _refused(lab, conn, "vol", "wipe", f"{POOL}/sys", naming=(f"used by VM(s) {VM} (running: {VM}", "--force"))


def test_a_backing_file_is_never_written_under_its_overlay(lab, guarded):
    host, _console = guarded
    conn = host.conn
    for vm in ("g-a", "g-b"):
        cli_ok(lab.uri, "vm", "create", vm, "--memory", "64M")
    cli_ok(lab.uri, "vm", "attach-disk", "g-a", f"{POOL}/overlay")
    message = _refused(lab, conn, "vm", "attach-disk", "g-b", f"{POOL}/base",
                       naming=(f"{POOL}/base is the backing file of {POOL}/overlay", "attached to g-a", "read-only"))
    assert message.startswith("error: volume: ")
    _refused(lab, conn, "vm", "create", "g-c", "--memory", "64M", "--disk", f"{POOL}/base",
             naming=("is the backing file of", "g-a"))
    cli_ok(lab.uri, "vm", "attach-disk", "g-b", f"{POOL}/base", "--readonly")  # reading it harms nobody
    cli_ok(lab.uri, "vm", "detach-disk", "g-a", "vda")
    cli_ok(lab.uri, "vm", "detach-disk", "g-b", "vda")
    cli_ok(lab.uri, "vm", "attach-disk", "g-b", f"{POOL}/base")  # read-write, with no overlay in use
    _refused(lab, conn, "vm", "attach-disk", "g-a", f"{POOL}/overlay",
             naming=(f"{POOL}/overlay is an overlay of {POOL}/base", "attached read-write to g-b"))


def test_delete_with_storage_refuses_a_stopped_pool(lab, guarded):
    host, _console = guarded
    conn = host.conn
    cli_ok(lab.uri, "vm", "create", "g-spare", "--memory", "64M", "--disk", f"{SPARE_POOL}/spare")
    cli_ok(lab.uri, "pool", "stop", SPARE_POOL)
    try:
        message = _refused(lab, conn, "vm", "delete", "g-spare", "--remove-storage",
                           naming=(f"pool {SPARE_POOL}, which is not running", "without --remove-storage"))
        assert "deleted" not in message
    finally:
        cli_ok(lab.uri, "pool", "start", SPARE_POOL)
    out = cli_ok(lab.uri, "vm", "delete", "g-spare", "--remove-storage")
    assert f"{SPARE_POOL}/spare" in out and host.conn.storagePoolLookupByName(SPARE_POOL).listVolumes() == []
