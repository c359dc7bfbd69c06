"""`virtops vm`: virtual machines, their disks and NICs. A thin face over virtops.ops.vm."""
from __future__ import annotations

import sys

import click

from virtops.cli.common import (ModelCommand, complete, emit_json, emit_table, given_fields, json_option,
                                listing_command, pass_context, request_of)
from virtops.cli.listings import BY_PATH
from virtops.xmlmodels.values import DIRECT_MODES, NIC_TYPES

# The compact syntax of a disk and of a NIC: the fields of ops/devices.py's DiskRequest and
# NicRequest (ops/vm.py parses them, and refuses an unknown KEY naming the known ones).
DISK_SYNTAX = "POOL/VOL|path=PATH|protocol=P,name=N,hosts=H:PORT[,bus=,cache=,format=,readonly=on,shareable=on,serial=,target=]"
NIC_SYNTAX = {"network": "NET[,mac=,model=]", "bridge": "BRIDGE[,mac=,model=]", "direct": "DEV[,mode=,mac=,model=]"}
NIC_HELP = {"network": "A NIC on a virtual network", "bridge": "A NIC on a bridge of the host",
            "direct": f"A NIC on a host device through macvtap (mode: {', '.join(DIRECT_MODES)})"}


@click.group()
def vm() -> None:
    """Virtual machines: create, run, console; attach and detach disks and NICs."""


def _vms(ctx):
    return ctx.host().vms


# -- listing and reading ---------------------------------------------------------------------
for _listing in ("list", "info"):
    vm.add_command(listing_command(BY_PATH["vm", _listing]))


@vm.command("blklist")
@click.argument("name", shell_complete=complete("vm"))
@json_option
@pass_context
def vm_blklist(ctx, name: str, as_json: bool) -> None:
    """The disks of a VM (virsh domblklist)."""
    disks = _vms(ctx).disks(name)
    if as_json:
        emit_json([d.model_dump() for d in disks])
        return
    emit_table([d.model_dump() for d in disks],
               [("target", "Target"), ("source", "Source"), ("device", "Device"), ("bus", "Bus"),
                ("format", "Format"), ("readonly", "Read-only")])


@vm.command("iflist")
@click.argument("name", shell_complete=complete("vm"))
@json_option
@pass_context
def vm_iflist(ctx, name: str, as_json: bool) -> None:
    """The NICs of a VM (virsh domiflist)."""
    nics = _vms(ctx).nics(name)
    if as_json:
        emit_json([n.model_dump() for n in nics])
        return
    emit_table([n.model_dump() for n in nics],
               [("interface", "Interface"), ("type", "Type"), ("source", "Source"), ("model", "Model"), ("mac", "MAC")])


@vm.command("ip")
@click.argument("name", shell_complete=complete("vm"))
@json_option
@pass_context
def vm_ip(ctx, name: str, as_json: bool) -> None:
    """Addresses of a running VM, from its networks' DHCP leases (virsh domifaddr)."""
    nics = _vms(ctx).addresses(name)
    if as_json:
        emit_json([{"mac": n.mac, "network": n.network, "interface": n.interface, "ip": n.ip} for n in nics])
        return
    emit_table([n.model_dump() for n in nics],
               [("interface", "Interface"), ("mac", "MAC"), ("network", "Network"), ("ip", "Address")])


@vm.command("dumpxml")
@click.argument("name", shell_complete=complete("vm"))
@click.option("--inactive", is_flag=True, help="The persistent definition rather than the running configuration.")
@pass_context
def vm_dumpxml(ctx, name: str, inactive: bool) -> None:
    """The domain XML, as libvirt has it."""
    click.echo(_vms(ctx).dumpxml(name, inactive=inactive), nl=False)


def _stats_commands() -> list[click.Command]:
    from virtops.cli.screens import vm_screenshot
    from virtops.cli.stats import vm_stats

    return [vm_stats, vm_screenshot]


for _command in _stats_commands():
    vm.add_command(_command)


# -- creating --------------------------------------------------------------------------------
def _create_request_model() -> type:
    from virtops.ops.vm import CreateRequest

    return CreateRequest


# vm create takes CreateRequest's fields as options; its disks, new disks, NICs and boot in their
# compact syntax (ops/vm.py parses it), its NICs by what they are plugged into.
@vm.command("create", cls=ModelCommand, model=_create_request_model,
            leave_out=("name", "disks", "new_disks", "nics", "boot"),
            extra={"memory": {"metavar": "SIZE", "required": True}, "import_disk": {"flag": "--import"},
                   "graphics": {"type": click.Choice(["none", "vnc"])}, "cdrom": {"metavar": "POOL/VOL|PATH"}})
@click.argument("name")
@click.option("--disk", "disks", multiple=True, metavar=DISK_SYNTAX,
              help="A disk: an existing volume, a file or block device, or a network disk (repeatable).")
@click.option("--new-disk", "new_disks", multiple=True, metavar="POOL:SIZE[:FORMAT]",
              help="Create a volume for the VM (repeatable; qcow2 unless FORMAT).")
@click.option("--network", "networks", multiple=True, metavar=NIC_SYNTAX["network"], help=NIC_HELP["network"] + " (repeatable).")
@click.option("--bridge", "bridges", multiple=True, metavar=NIC_SYNTAX["bridge"], help=NIC_HELP["bridge"] + " (repeatable).")
@click.option("--direct", "directs", multiple=True, metavar=NIC_SYNTAX["direct"], help=NIC_HELP["direct"] + " (repeatable).")
@click.option("--boot", metavar="kernel=PATH,initrd=PATH,cmdline=ARGS", help="Direct kernel boot.")
@json_option
@pass_context
def vm_create(ctx, name, disks, new_disks, networks, bridges, directs, boot, as_json, **fields) -> None:
    """Define a VM with disks (pool volumes, paths, network disks) and NICs (on virtual networks,
    bridges, host devices)."""
    from virtops.ops import vm as core

    from virtops.cli.output import ITEM_LABELS

    by_type = dict(zip(NIC_TYPES, (networks, bridges, directs)))
    ITEM_LABELS["nics"] = [f"--{kind} #{j + 1}" for kind in NIC_TYPES for j in range(len(by_type[kind]))]
    request = request_of(
        core.CreateRequest, name=name, **given_fields(core.CreateRequest, fields),
        disks=[core.parse_disk_option(d) for d in disks], new_disks=[core.parse_new_disk_option(d) for d in new_disks],
        nics=[core.parse_network_option(n, kind) for kind in NIC_TYPES for n in by_type[kind]],
        boot=core.parse_boot_option(boot) if boot else None)
    info = _vms(ctx).create(request)
    if as_json:
        emit_json(info.model_dump())
        return
    click.echo(f"VM {info.name} {'started' if info.running else 'defined'} (type {info.virt_type}).")


def _vm_changes_model() -> type:
    from virtops.ops.vm import VmChanges

    return VmChanges


# vm set takes VmChanges' fields as options, the boot in its compact syntax.
@vm.command("set", cls=ModelCommand, model=_vm_changes_model, leave_out=("boot",),
            extra={"memory": {"metavar": "SIZE"}})
@click.argument("name", shell_complete=complete("vm"))
@click.option("--boot", metavar="kernel=PATH,initrd=PATH,cmdline=ARGS", help="Direct kernel boot.")
@click.option("--no-boot", is_flag=True, help="Drop direct kernel boot: boot from the first disk.")
@click.option("--boot-order", metavar="DEV,DEV", help="BIOS boot order of hd, cdrom, network, fd, e.g. cdrom,hd.")
@json_option
@pass_context
def vm_set(ctx, name, memory, vcpus, boot, no_boot, boot_order, autostart, as_json) -> None:
    """Change a VM's memory, vCPUs, direct kernel boot, boot order or autostart in its definition.

    A running VM keeps its memory, vCPUs and boot until its next boot (virtops does not reboot it)."""
    from virtops.ops import vm as core

    if boot and no_boot:
        raise click.UsageError("give --boot or --no-boot, not both.")
    result = _vms(ctx).update(name, memory=memory, vcpus=vcpus, boot=core.parse_boot_option(boot) if boot else None,
                              change_boot=bool(boot or no_boot), autostart=autostart,
                              boot_order=[d.strip() for d in boot_order.split(",")] if boot_order is not None else None)
    if as_json:
        emit_json(result.model_dump())
        return
    click.echo(f"VM {name}: {', '.join(result.changed)}.")
    if result.next_boot:
        click.echo(f"{', '.join(result.next_boot)}: takes effect at VM {name}'s next boot; virtops does not reboot it.")


@vm.command("define")
@click.argument("file", type=click.File("r"))
@pass_context
def vm_define(ctx, file) -> None:
    """Define (or redefine) a VM from domain XML (virsh define)."""
    info = _vms(ctx).define(file.read())
    click.echo(f"VM {info.name} defined.")


# -- life cycle -------------------------------------------------------------------------------
def _lifecycle(command: str, done: str, help_text: str) -> None:
    @vm.command(command, help=help_text)
    @click.argument("name", shell_complete=complete("vm"))
    @pass_context
    def run(ctx, name: str) -> None:
        getattr(_vms(ctx), command)(name)
        click.echo(f"VM {name} {done}.")


_lifecycle("start", "started", "Start a VM.")
_lifecycle("shutdown", "is shutting down (asked the guest)", "Ask the guest to power off (ACPI).")
_lifecycle("reboot", "is rebooting (asked the guest)", "Ask the guest to reboot (ACPI).")
_lifecycle("destroy", "destroyed (stopped at once; definition and disks kept)", "Stop a VM at once.")
_lifecycle("suspend", "suspended", "Pause a running VM.")
_lifecycle("resume", "resumed", "Continue a paused VM.")


@vm.command("delete")
@click.argument("name", shell_complete=complete("vm"))
@click.option("--remove-storage", is_flag=True, help="Also delete the volumes behind its disks.")
@click.option("--force", is_flag=True, help="Destroy it first when running.")
@pass_context
def vm_delete(ctx, name: str, remove_storage: bool, force: bool) -> None:
    """Undefine a VM (virsh undefine)."""
    result = _vms(ctx).delete(name, remove_storage=remove_storage, force=force)
    removed = f"; volumes removed: {', '.join(result.removed_volumes)}" if result.removed_volumes else ""
    click.echo(f"VM {name} deleted{' (destroyed first)' if result.destroyed else ''}{removed}.")


@vm.command("console")
@click.argument("name", shell_complete=complete("vm"))
@click.option("--force", is_flag=True, help="Take the console over from another client.")
@pass_context
def vm_console(ctx, name: str, force: bool) -> None:
    """Interactive serial console; Ctrl-] leaves."""
    from virtops.ops.vm import pump_console

    console = _vms(ctx).console(name, force=force)
    click.echo(f"Connected to the console of {name}; Ctrl-] leaves.", err=True)
    stdin = sys.stdin.fileno()
    saved = _raw_terminal(stdin)
    try:
        why = pump_console(console, stdin, sys.stdout.fileno())
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        console.close()
    click.echo("" if why == "escape" else f"\nThe console of {name} closed.", err=True)


def _raw_terminal(fd: int):
    """Raw mode on a terminal, so keys go to the guest as typed; the old mode is returned."""
    if not sys.stdin.isatty():
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return saved


# -- devices -----------------------------------------------------------------------------------
def _halves(func):
    # --persistent is virsh's spelling of our default: the running VM (if any) and its definition.
    func = click.option("--persistent", is_flag=True, hidden=True)(func)
    func = click.option("--config", is_flag=True, default=None, help="Change the persistent definition.")(func)
    return click.option("--live", is_flag=True, default=None, help="Change the running VM.")(func)


def _disk_request_model() -> type:
    from virtops.ops.devices import DiskRequest

    return DiskRequest


@vm.command("attach-disk", cls=ModelCommand, model=_disk_request_model, leave_out=("volume", "path"),
            extra={"bus": {"names": ("--targetbus",)}})
@click.argument("vm_name", metavar="NAME", shell_complete=complete("vm"))
@click.argument("volume", metavar=DISK_SYNTAX, shell_complete=complete("volume"))
@click.argument("target_arg", required=False, metavar="[TARGET]")
@_halves
@json_option
@pass_context
def vm_attach_disk(ctx, vm_name, volume, target_arg, live, config, persistent, as_json, **fields) -> None:
    """Attach a disk: a pool's volume (POOL/VOL, or its path as virsh takes it), a file or block
    device (path=PATH), or a network disk, in --disk's syntax; its other fields as options too
    (DiskRequest's). Live and persistent on a running VM unless told otherwise."""
    from virtops.ops.devices import DiskRequest
    from virtops.ops.vm import parse_disk_option

    fields["target"] = _one_of(target_arg, fields.get("target"), "target")
    request = parse_disk_option(volume, "volume")
    request = DiskRequest(**{**request.model_dump(exclude_unset=True), **given_fields(DiskRequest, fields)})
    disk = _vms(ctx).attach_disk(vm_name, request, live=live, config=config)
    if as_json:
        emit_json(disk.model_dump())
        return
    click.echo(f"Disk {disk.source} attached to {vm_name} as {disk.target}.")


@vm.command("detach-disk")
@click.argument("name", shell_complete=complete("vm"))
@click.argument("target")
@_halves
@pass_context
def vm_detach_disk(ctx, name, target, live, config, persistent) -> None:
    """Detach the disk with this target (e.g. vdb)."""
    _report_detach(_vms(ctx).detach_disk(name, target, live=live, config=config))


def _nic_request_model() -> type:
    from virtops.ops.devices import NicRequest

    return NicRequest


@vm.command("attach-nic", cls=ModelCommand, model=_nic_request_model,
            extra={"network": {"shell_complete": complete("network")}})
@click.argument("vm_name", metavar="NAME", shell_complete=complete("vm"))
@click.argument("virsh_args", nargs=-1, metavar="[network NET]")
@_halves
@json_option
@pass_context
def vm_attach_nic(ctx, vm_name, virsh_args, live, config, persistent, as_json, **fields) -> None:
    """Attach a NIC on a virtual network, a bridge or a host device, its fields as options
    (NicRequest's); virsh's `attach-interface VM network NET` and `bridge BR` work too."""
    from virtops.ops.devices import NicRequest

    if virsh_args:
        if len(virsh_args) != 2 or virsh_args[0] not in NIC_TYPES:
            raise click.UsageError("give the NIC's source as --network NET (--bridge BR, --direct DEV), or as "
                                   "virsh does: network NET.")
        kind = virsh_args[0]
        fields[kind] = _one_of(virsh_args[1], fields.get(kind), kind)
    if not any(fields.get(kind) for kind in NIC_TYPES):
        raise click.UsageError("give what the NIC is plugged into: --network NET, --bridge BR or --direct DEV.")
    nic = _vms(ctx).attach_nic(vm_name, NicRequest(**given_fields(NicRequest, fields)), live=live, config=config)
    if as_json:
        emit_json(nic.model_dump())
        return
    where = f"network {nic.network}" if nic.type == "network" else f"{nic.type} {nic.source}"
    click.echo(f"NIC {nic.mac} ({nic.model}) on {where} attached to {vm_name}.")


@vm.command("detach-nic")
@click.argument("name", shell_complete=complete("vm"))
@click.argument("mac")
@_halves
@pass_context
def vm_detach_nic(ctx, name, mac, live, config, persistent) -> None:
    """Detach the NIC with this MAC address."""
    _report_detach(_vms(ctx).detach_nic(name, mac, live=live, config=config))


def _one_of(positional, option, what: str):
    if positional and option and positional != option:
        raise click.UsageError(f"give the {what} once: as an argument or as --{what}.")
    return positional or option


def _report_detach(result) -> None:
    where = " and ".join(w for w, on in (("running VM", result.live), ("definition", result.config)) if on)
    click.echo(f"{result.device[0].upper()}{result.device[1:]} detached from {result.vm} ({where}).")
    if result.pending:
        click.echo(f"The guest has not released {result.device} yet; it goes when the guest lets it go.", err=True)


def _move_options_model():
    from virtops.ops.migrate import MoveOptions

    return MoveOptions


# vm migrate takes MoveOptions' fields as options (the REST API's move body is the same model).
@vm.command("migrate", cls=ModelCommand, model=_move_options_model,
            extra={"bandwidth_mib_s": {"flag": "--bandwidth", "metavar": "MIB_S"},
                   "timeout_s": {"flag": "--timeout", "metavar": "SECONDS", "type": float}})
@click.argument("name", shell_complete=complete("vm"))
@click.option("--to", "to", required=True, help="Destination host: a registered name, lab:NAME or a URI.")
@json_option
@pass_context
def vm_migrate(ctx, name: str, to: str, as_json: bool, **options) -> None:
    """Move a VM to another host, live when it runs; checks everything first. Ctrl-C cancels."""
    from virtops.cli.migrate import run_migrate

    run_migrate(ctx, name, to, options, as_json)

