"""`virtops demo`: the reference scenario (SCENARIO.md) end to end on a fresh lab host.

Each step says what it does and the virsh command an operator would have typed, runs it through
the same core operations as the CLI, then shows what the guest itself reports."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click

DEMO_LAB = "demo"
MIB = 1024**2
VM = "handbook"


def step(number: str, what: str, virsh: str | None = None, virtops: str | None = None) -> None:
    click.secho(f"\n[{number}] {what}", bold=True)
    if virsh:
        click.echo(f"    with virsh:   {virsh}")
    if virtops:
        click.echo(f"    with virtops: {virtops}")


def say(text: str) -> None:
    click.echo(f"    -> {text}")


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the lab host running afterwards (connect with -c lab:demo).")
def demo(keep: bool) -> None:
    """Run the handbook's scenario end to end on a fresh lab host."""
    from virtops.host import Host
    from virtops.lab.labhost import Lab

    lab = Lab(os.environ.get("VIRTOPS_DEMO_LAB", DEMO_LAB))
    second = Lab(f"{lab.name}-b")  # step 8's second host, on the same segment
    for old in (second, lab):
        if old.exists():
            old.down()
    click.secho(f"virtops demo: SCENARIO.md on lab host '{lab.name}', a private libvirtd in its own namespaces", bold=True)
    # On a segment (named after the lab) from the start: the segment's NFS server at 192.168.0.254
    # is the one both hosts of step 8 mount.
    lab.up(uplink=True, segment=lab.name)
    host = Host(lab.uri)
    summary: list[tuple[str, str]] = []
    try:
        _run(host, lab, second, summary)
    finally:
        host.close()
        if keep:
            click.echo(f"\nThe lab hosts are still running: virtops -c lab:{lab.name} ... (and lab:{second.name}); "
                       f"remove them with `virtops lab down {second.name}` and `virtops lab down {lab.name}`.")
        else:
            for done in (second, lab):
                if done.exists():
                    done.down()
            click.echo(f"\nLab hosts '{lab.name}' and '{second.name}' removed.")
    click.secho("\nSummary", bold=True)
    for what, result in summary:
        click.echo(f"  {what:<34} {result}")


def _run(host, lab, second, summary) -> None:
    from virtops.testguest.image import build_guest_image, kernel_cmdline
    from virtops.ops.pool import PoolSpec
    from virtops.base.units import format_size
    from virtops.ops.vm import CreateRequest, DiskRequest

    step("0", "Can this machine boot guests with KVM, or only with QEMU's TCG emulation?", virtops="virtops host check")
    virt_type = host.virt_type()
    check = host.cached_check()
    for label, boot in (("KVM", check.kvm), ("TCG", check.tcg)) if check else ():
        say(f"{label}: " + (f"boots the test guest in {boot.boot_seconds} s" if boot.usable else f"not usable ({boot.reason})"))
    say(f"new guests use domain type '{virt_type}'")
    summary.append(("guest type", virt_type))

    step("1", "Storage pool `test` on /var/lib/libvirt/test (root:root, 0700): define, build, start, autostart",
         "mkdir -m 0700 /var/lib/libvirt/test; virsh pool-define-as test dir --target /var/lib/libvirt/test; "
         "virsh pool-build test; virsh pool-start test; virsh pool-autostart test",
         "virtops pool create test --type dir --target /var/lib/libvirt/test --owner root --group root --mode 0700")
    created = host.pools.create(PoolSpec(name="test", type="dir", target="/var/lib/libvirt/test",
                                         owner="root", group="root", mode="0700"))
    pool = created.pool
    say(f"{', '.join(created.steps)}; state {pool.state}, autostart {'yes' if pool.autostart else 'no'}, "
        f"mode {pool.mode}, owner {pool.owner}:{pool.group}, {format_size(pool.available)} available")
    for warning in created.warnings:
        say(f"warning: {warning}")

    step("1b", "QEMU runs as libvirt-qemu (as Debian ships it) and cannot pass a 0700 directory of root's: "
               "let it through, as the warning proposes (the directory stays unlistable for others)",
         "chmod 0711 /var/lib/libvirt/test (and edit the pool's XML to match)",
         "virtops pool set test --mode 0711")
    pool = host.pools.set_permissions("test", mode="0711").pool
    say(f"pool test: mode {pool.mode}, owner {pool.owner}:{pool.group}")
    summary.append(("pool test", f"{pool.state}, autostart, mode {pool.mode} (0700 + x for QEMU)"))

    step("2", "Volume `test` in pool `test`: raw, 1000 MiB, sparse (allocation 0)",
         "virsh vol-create-as test test 1000M --allocation 0 --format raw",
         "virtops vol create test test --capacity 1000M --allocation 0 --format raw")
    vol = host.volumes.create("test", "test", capacity="1000M", allocation=0, format="raw").volume
    say(f"{vol.path}: capacity {vol.capacity} bytes, allocation {vol.allocation} bytes")
    summary.append(("volume test/test", f"{vol.capacity} bytes, {vol.format}"))

    step("3", "Give the volume to a VM as a VirtIO disk; the guest must see /dev/vdb of 1048576000 bytes",
         "virsh attach-disk handbook /var/lib/libvirt/test/test vdb --persistent",
         "virtops vm attach-disk handbook test/test")
    image = build_guest_image()
    host.volumes.create("test", "system", capacity="64M", allocation=0, format="raw")
    host.vms.create(CreateRequest(
        name=VM, memory="256M", vcpus=1, disks=[DiskRequest(volume="test/system")],
        boot={"kernel": str(image.kernel), "initrd": str(image.initrd), "cmdline": kernel_cmdline("shell")}))
    say(f"VM {VM} defined (the tiny test guest, system disk test/system as vda)")
    disk = host.vms.attach_disk(VM, "test/test")
    say(f"test/test attached as {disk.target} (bus {disk.bus})")
    host.vms.start(VM)
    console = host.vms.console(VM)
    try:
        report = _guest_report(console, lambda r: "vdb" in r.disks)
        say("the guest reports: " + ", ".join(f"/dev/{d} {size} bytes" for d, size in sorted(report.disks.items())))
        summary.append(("guest sees /dev/vdb", f"{report.disks.get('vdb')} bytes"))
        _nfs_step(host, summary)
        _network_steps(host, console, summary)
    finally:
        console.close()
    _backup_steps(host, summary)
    _shared_nfs_steps(host, lab, second, image, summary)


def _nfs_step(host, summary) -> None:
    from virtops.base.errors import VirtopsError
    from virtops.ops.pool import PoolSpec

    step("4", "Storage pool `nfs` on the NFS server 192.168.0.254:/nfs, mounted on /var/lib/libvirt/nfs",
         "virsh find-storage-pool-sources netfs --host 192.168.0.254; virsh pool-define-as nfs netfs "
         "--source-host 192.168.0.254 --source-path /nfs --target /var/lib/libvirt/nfs; virsh pool-start nfs",
         "virtops pool sources netfs --host 192.168.0.254; virtops pool create nfs --type netfs "
         "--host 192.168.0.254 --source-path /nfs --target /var/lib/libvirt/nfs --format nfs")
    exports = host.pools.sources("netfs", "192.168.0.254")
    say("the server exports: " + ", ".join(f"{e.host}:{e.path}" for e in exports))
    created = host.pools.create(PoolSpec(name="nfs", type="netfs", host="192.168.0.254", source_path="/nfs",
                                         target="/var/lib/libvirt/nfs", format="nfs"), start=False)
    say(f"pool nfs {', '.join(created.steps)}")
    try:
        host.pools.start("nfs")
        host.volumes.create("nfs", "nfs", capacity="5G", allocation="512M", format="raw")
        say("started; volume nfs/nfs created: raw, 5 GiB, 0.5 GiB allocated")
        summary.append(("pool nfs", "running, volume nfs/nfs 5 GiB"))
    except VirtopsError as err:
        say(f"{err}")
        say("on a host whose kernel has an NFS client, the same commands mount it and take volume nfs (5G, 0.5G allocated)")
        summary.append(("pool nfs", f"exports found; defined, {host.pools.info('nfs').state} (no NFS client here)"))


def _network_steps(host, console, summary) -> None:
    import ipaddress

    step("5", "Virtual networks: libvirt's `default`, then `mynetwork` (routed, 192.168.200.0/24, DHCP .128-.254)",
         "virsh net-list --all; virsh net-define mynetwork.xml (XML written by hand); virsh net-start mynetwork; "
         "virsh net-autostart mynetwork",
         "virtops net create mynetwork --subnet 192.168.200.0/24 --gateway 192.168.200.1 "
         "--dhcp 192.168.200.128-192.168.200.254 --mode route")
    default = host.networks.info("default")
    say(f"default: {default.mode}, bridge {default.bridge}, {default.gateway} on {default.subnet}, DHCP {default.dhcp_range}")
    net = host.networks.create("mynetwork", subnet="192.168.200.0/24", gateway="192.168.200.1",
                               dhcp="192.168.200.128-192.168.200.254", mode="route")
    say(f"mynetwork: {net.mode}, bridge {net.bridge}, {net.gateway} on {net.subnet}, DHCP {net.dhcp_range}, "
        f"{'active' if net.active else 'inactive'}, autostart {'yes' if net.autostart else 'no'}")
    summary.append(("network mynetwork", f"{net.mode}, {net.subnet}, DHCP {net.dhcp_range}"))

    step("6", "Give the VM a NIC on mynetwork (MAC generated in 52:54:00:xx:xx:xx, model virtio)",
         "virsh attach-interface handbook network mynetwork --model virtio --live --config",
         "virtops vm attach-nic handbook --network mynetwork")
    nic = host.vms.attach_nic(VM, "mynetwork")
    say(f"NIC {nic.mac} attached (live and persistent)")
    report = _guest_report(console, lambda r: any(n.mac == nic.mac and n.ip for n in r.nics))
    guest_nic = next(n for n in report.nics if n.mac == nic.mac)
    say(f"the guest reports: {guest_nic.name} MAC {guest_nic.mac}, lease {guest_nic.ip} from {guest_nic.lease_server}, "
        f"router {guest_nic.router}")
    inside = ipaddress.ip_address("192.168.200.128") <= ipaddress.ip_interface(guest_nic.ip).ip <= ipaddress.ip_address("192.168.200.254")
    summary.append(("guest lease on mynetwork", f"{guest_nic.ip} ({'inside' if inside else 'OUTSIDE'} .128-.254)"))
    ip = _wait_for_vm_ip(host, nic.mac)
    say(f"virtops vm ip {VM}: {ip or 'no lease seen by libvirt yet'}")


def _backup_steps(host, summary) -> None:
    from virtops.backup.archive import create_backup

    step("7", "List the networks; back up `default` and the whole host",
         "virsh net-list --all; virsh net-dumpxml default > default_net.xml",
         "virtops net list --all; virtops net dumpxml default -o default_net.xml; virtops backup create")
    for net in host.networks.list():
        say(f"{net.name:<10} {'active' if net.active else 'inactive':<9} autostart {'yes' if net.autostart else 'no ':<3} "
            f"persistent {'yes' if net.persistent else 'no'}  {net.mode:<6} {net.subnet}")
    folder = Path(tempfile.mkdtemp(prefix="virtops-demo-"))
    (folder / "default_net.xml").write_text(host.networks.dumpxml("default"))
    archive = create_backup(host, folder / "host-backup.tar.gz")
    say(f"{folder / 'default_net.xml'} written; whole host: {len(archive.objects)} objects in {folder / 'host-backup.tar.gz'}")
    summary.append(("backup", f"{len(archive.objects)} objects, {folder}"))


def _shared_nfs_steps(host, lab, second, image, summary) -> None:
    from virtops.base.errors import VirtopsError
    from virtops.host import Host
    from virtops.ops.migrate import MigrateRequest, migrate
    from virtops.ops.pool import PoolSpec
    from virtops.ops.vm import CreateRequest, DiskRequest
    from virtops.testguest.image import kernel_cmdline
    from virtops.testguest.shell import guest_uptime

    second.up(segment=lab.name)
    step("8", f"A second host '{second.name}' on the same segment mounts the same pool `nfs` and sees volume nfs",
         "(on the second host) virsh pool-define-as nfs netfs --source-host 192.168.0.254 --source-path /nfs "
         "--target /var/lib/libvirt/nfs; virsh pool-start nfs; virsh vol-list nfs",
         f"virtops lab up {second.name} --segment {lab.name}; virtops -c lab:{second.name} pool create nfs "
         f"--type netfs --host 192.168.0.254 --source-path /nfs --target /var/lib/libvirt/nfs --format nfs")
    other = Host(second.uri)
    try:
        other.pools.create(PoolSpec(name="nfs", type="netfs", host="192.168.0.254", source_path="/nfs",
                                    target="/var/lib/libvirt/nfs", format="nfs"))
        seen = sorted(v.name for v in other.volumes.list("nfs"))
        say(f"pool nfs on {second.name}: volumes {', '.join(seen) or 'none'}")
        summary.append((f"nfs on {second.name}", "volume nfs seen" if "nfs" in seen else "volume nfs NOT seen"))

        step("8b", f"A running VM whose disk is on `nfs` moves live to {second.name} and keeps running",
             f"virsh migrate --live --p2p --persistent --undefinesource traveller {second.peer_uri}",
             f"virtops vm migrate traveller --to lab:{second.name}")
        host.volumes.create("nfs", "traveller", capacity="16M", allocation=0, format="raw")
        host.vms.create(CreateRequest(
            name="traveller", memory="128M", vcpus=1, disks=[DiskRequest(volume="nfs/traveller")],
            boot={"kernel": str(image.kernel), "initrd": str(image.initrd), "cmdline": kernel_cmdline("shell")}))
        host.vms.start("traveller")
        before = _uptime_on(host, "traveller", guest_uptime)
        moved = migrate(host.conn, other.conn, second.peer_uri, MigrateRequest(name="traveller"), f"lab:{second.name}")
        after = _uptime_on(other, "traveller", guest_uptime)
        here = [vm.name for vm in host.vms.list()]
        say(f"moved live in {moved.seconds:.1f} s; on {second.name}: {other.vms.info('traveller').state}, "
            f"gone from {lab.name}: {'yes' if 'traveller' not in here else 'NO'}")
        say(f"the guest's uptime: {before:.1f} s before the move, {after:.1f} s after (the same boot)")
        summary.append(("live move over nfs", f"{moved.seconds:.1f} s, uptime {before:.1f} s -> {after:.1f} s"))

        step("8c", f"A move {second.name} cannot take: {VM} uses network mynetwork, which {second.name} lacks",
             f"virsh migrate --live {VM} ... (libvirt would fail part-way)", f"virtops vm migrate {VM} --to lab:{second.name}")
        try:
            migrate(host.conn, other.conn, second.peer_uri, MigrateRequest(name=VM), f"lab:{second.name}")
            summary.append(("refused move", "NOT refused"))
        except VirtopsError as err:
            for line in str(err).splitlines():
                say(f"refused: {line.strip()}")
            stayed = host.vms.info(VM).state
            say(f"nothing moved: {VM} is {stayed} on {lab.name}")
            summary.append(("refused move", f"before anything moved; {VM} {stayed} on {lab.name}"))
    finally:
        other.close()


def _uptime_on(host, name: str, guest_uptime) -> float:
    console = host.vms.console(name, force=True)
    try:
        _guest_report(console, lambda r: "vda" in r.disks)
        return guest_uptime(console)
    finally:
        console.close()


def _guest_report(console, condition, timeout_s: float = 120):
    from virtops.testguest.image import wait_for_report

    return wait_for_report(console, condition, timeout_s)


def _wait_for_vm_ip(host, mac: str, timeout_s: float = 20) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = next((n.ip for n in host.vms.addresses(VM) if n.mac == mac and n.ip), None)
        if found:
            return found
        time.sleep(1)
    return None
