"""`virtops net`: virtual networks. A thin face over virtops.ops.network; every rule lives there."""
from __future__ import annotations

from pathlib import Path

import click

from virtops.xmlmodels.values import EDITABLE_MODES, NETWORK_MODES
from virtops.cli.common import (ModelCommand, complete, emit_json, emit_table, given_fields, json_option, listing_command,
                                pass_context)
from virtops.cli.listings import BY_PATH

@click.group()
def net() -> None:
    """Virtual networks: NAT, routed, isolated, open and bridged, with DHCP."""


for _listing in ("list", "info"):
    net.add_command(listing_command(BY_PATH["net", _listing]))


def _networks(ctx):
    return ctx.host().networks


def _dhcp_value(dhcp: str | None, no_dhcp: bool):
    if dhcp and no_dhcp:
        raise click.UsageError("give either --dhcp or --no-dhcp, not both.")
    return False if no_dhcp else dhcp


def _network_request_model() -> type:
    from virtops.ops.network import NetworkRequest

    return NetworkRequest


def _network_changes_model() -> type:
    from virtops.ops.network import NetworkChanges

    return NetworkChanges


def _dhcp_host_model() -> type:
    from virtops.ops.network import DhcpHost

    return DhcpHost


def _host_key_model() -> type:
    from virtops.ops.network import HostKey

    return HostKey


# The command line's own spellings of NetworkRequest's fields (their metavars).
NETWORK_METAVARS = {"subnet": {"metavar": "CIDR"}, "gateway": {"metavar": "IP"}, "dhcp": {"metavar": "START-END"},
                    "dev": {"metavar": "IFACE"}, "bridge": {"metavar": "NAME"}, "domain": {"metavar": "DNSDOMAIN"},
                    "ipv6": {"metavar": "CIDR"}}


# The static hosts and the several addresses of a network are the spec's and the REST API's to
# give at creation; on the command line `net host add` adds hosts one by one.
@net.command("create", cls=ModelCommand, model=_network_request_model, leave_out=("name", "hosts", "addresses"),
             extra={**NETWORK_METAVARS, "mode": {"type": click.Choice(NETWORK_MODES)}})
@click.argument("name")
@click.option("--no-dhcp", is_flag=True, help="No DHCP server.")
@click.option("--no-start", is_flag=True, help="Define only; do not start.")
@click.option("--no-autostart", is_flag=True, help="Do not start it with the host.")
@json_option
@pass_context
def create(ctx, name, no_dhcp, no_start, no_autostart, as_json, **fields) -> None:
    """Define, start and autostart a network in one step (undone if a step fails); its fields as
    options (NetworkRequest's)."""
    from virtops.ops.network import NetworkRequest

    fields["dhcp"] = _dhcp_value(fields["dhcp"], no_dhcp)
    request = NetworkRequest(name=name, **given_fields(NetworkRequest, fields))
    info = _networks(ctx).create_from(request, start=not no_start, autostart=not no_autostart)
    if as_json:
        emit_json(info.model_dump())
        return
    click.echo(f"Network {info.name} created: {_summary(info)}.")


def _summary(info) -> str:
    parts = [f"mode {info.mode}" + (f" via {info.dev}" if info.dev else "")]
    if info.bridge:
        parts.append(f"bridge {info.bridge}")
    if info.subnet:
        parts.append(f"subnet {info.subnet}, gateway {info.gateway}")
    parts.append(f"DHCP {info.dhcp_range}" if info.dhcp_range else "no DHCP")
    parts.append("running" if info.active else "not running")
    parts.append("autostart" if info.autostart else "no autostart")
    return ", ".join(parts)


@net.command("start")
@click.argument("name", shell_complete=complete("network"))
@pass_context
def start(ctx, name) -> None:
    """Start a defined network."""
    _networks(ctx).start(name)
    click.echo(f"Network {name} started.")


@net.command("stop")
@click.argument("name", shell_complete=complete("network"))
@click.option("--force", is_flag=True, help="Stop even while running guests have NICs on it (`net start` re-plugs them).")
@pass_context
def stop(ctx, name, force) -> None:
    """Stop a network (virsh net-destroy); its definition stays."""
    _networks(ctx).stop(name, force=force)
    click.echo(f"Network {name} stopped.")


@net.command("autostart")
@click.argument("name", shell_complete=complete("network"))
@click.option("--disable", is_flag=True, help="Do not start it with the host.")
@pass_context
def autostart(ctx, name, disable) -> None:
    """Start the network with the host (or not, with --disable)."""
    _networks(ctx).set_autostart(name, not disable)
    click.echo(f"Network {name} {'will not' if disable else 'will'} start with the host.")


@net.command("delete")
@click.argument("name", shell_complete=complete("network"))
@click.option("--force", is_flag=True, help="Delete even while guests have NICs on it (they are named).")
@pass_context
def delete(ctx, name, force) -> None:
    """Stop and undefine a network."""
    users = _networks(ctx).delete(name, force=force)
    click.echo(f"Network {name} deleted." + (f" Guests left with a NIC on it: {', '.join(users)}." if users else ""))


@net.command("undefine")
@click.argument("name", shell_complete=complete("network"))
@click.option("--force", is_flag=True, help="Undefine even while guests have NICs on it (they are named).")
@pass_context
def undefine(ctx, name, force) -> None:
    """Remove the persistent definition; a running network keeps running as transient (virsh net-undefine)."""
    users = _networks(ctx).delete(name, force=force, keep_running=True)
    click.echo(f"Network {name} undefined." + (f" Guests with a NIC on it: {', '.join(users)}." if users else ""))


@net.command("leases")
@click.argument("name", shell_complete=complete("network"))
@json_option
@pass_context
def leases(ctx, name, as_json) -> None:
    """DHCP leases handed out on a running network."""
    rows = _networks(ctx).leases(name)
    if as_json:
        emit_json([r.model_dump() for r in rows])
        return
    emit_table([{**r.model_dump(), "ip": f"{r.ip}/{r.prefix}"} for r in rows],
               [("mac", "MAC"), ("ip", "Address"), ("hostname", "Hostname"), ("type", "Type"), ("expiry_time", "Expires")])


@net.command("dumpxml")
@click.argument("name", shell_complete=complete("network"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE (the backup).")
@click.option("--inactive", is_flag=True, help="The persistent definition rather than the live one.")
@pass_context
def dumpxml(ctx, name, output, inactive) -> None:
    """The network's XML exactly as libvirt gives it."""
    text = _networks(ctx).dumpxml(name, inactive=inactive)
    if output:
        Path(output).write_text(text)
        click.echo(f"Wrote the XML of {name} to {output}.", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@net.command("define")
@click.argument("file", type=click.File("r"))
@click.option("--replace", is_flag=True, help="Replace a network with the same name or UUID.")
@click.option("--start", "start_", is_flag=True, help="Start it after defining.")
@click.option("--force", is_flag=True, help="Replace a running network even under running guests (their NICs are re-plugged).")
@pass_context
def define(ctx, file, replace, start_, force) -> None:
    """Define a network from an XML file (restore a `net dumpxml` backup)."""
    i = _networks(ctx).define(file.read(), replace=replace, start=start_, force=force)
    click.echo(f"Network {i.name} defined: {_summary(i)}.")


@net.command("update")
@click.argument("name", shell_complete=complete("network"))
@click.argument("command", type=click.Choice(["add", "delete", "modify"]))
@click.argument("section", type=click.Choice(["ip-dhcp-host", "ip-dhcp-range"]))
@click.argument("xml")
@pass_context
def update(ctx, name, command, section, xml) -> None:
    """virsh net-update for DHCP hosts and ranges (live and persistent). XML is a fragment or a file."""
    text = Path(xml).read_text() if not xml.lstrip().startswith("<") and Path(xml).is_file() else xml
    click.echo(f"Network {name}: {_networks(ctx).update(name, command, section, text)}.")


@net.group("host")
def host_group() -> None:
    """Static DHCP leases (fixed addresses for MACs, names or DUIDs)."""


@host_group.command("add", cls=ModelCommand, model=_dhcp_host_model, extra={"name": {"flag": "--hostname"}})
@click.argument("network", metavar="NAME", shell_complete=complete("network"))
@pass_context
def host_add(ctx, network, **fields) -> None:
    """Give a MAC a fixed address (applied live and persistently); the host's fields as options
    (DhcpHost's)."""
    entry = _networks(ctx).host_add(network, fields["mac"], fields["ip"], fields["name"])
    click.echo(f"Network {network}: {entry.mac} gets {entry.ip}" + (f" ({entry.name})." if entry.name else "."))


@host_group.command("remove", cls=ModelCommand, model=_host_key_model)
@click.argument("network", metavar="NAME", shell_complete=complete("network"))
@pass_context
def host_remove(ctx, network, mac, name, ip, duid) -> None:
    """Remove a static DHCP lease (live and persistent), picked by exactly one of its MAC, name, IP or
    DUID (HostKey's fields): hosts known by name only or by DUID have no MAC."""
    from virtops.ops.network import host_text

    entry = _networks(ctx).host_remove(network, mac=mac, host_name=name, ip=ip, duid=duid)
    click.echo(f"Network {network}: removed the entry {host_text(entry)}.")


@net.command("default")
@click.option("--force", is_flag=True, help="Repair it even under running guests (restarted; their NICs are re-plugged).")
@pass_context
def default(ctx, force) -> None:
    """Re-create libvirt's stock `default` network when it is missing or changed, and say what changed."""
    changes = _networks(ctx).restore_default(force=force)
    if not changes:
        click.echo("Network default is as libvirt ships it (NAT, virbr0, 192.168.122.1/24, DHCP .2-.254), running "
                   "and autostart; nothing changed.")
    for change in changes:
        click.echo(f"default: {change}.")


@net.command("edit", cls=ModelCommand, model=_network_changes_model,
             extra={**NETWORK_METAVARS, "mode": {"type": click.Choice(EDITABLE_MODES)}})
@click.argument("name", shell_complete=complete("network"))
@click.option("--no-dhcp", is_flag=True, help="No DHCP server.")
@click.option("--yes", "-y", is_flag=True, help="Run a plan that restarts the network.")
@json_option
@pass_context
def edit(ctx, name, no_dhcp, yes, as_json, **fields) -> None:
    """Change a network: in place when libvirt can; otherwise an announced redefine-restart-reattach
    plan. Its fields as options (NetworkChanges'); absent ones stay."""
    fields["dhcp"] = _dhcp_value(fields["dhcp"], no_dhcp)
    plan, done = _networks(ctx).edit(name, yes=yes, **fields)
    if as_json:
        emit_json({"plan": plan.model_dump(exclude={"new_xml"}), "done": done})
        return
    if not plan.steps:
        click.echo(f"Network {name} already looks like that; nothing changed.")
        return
    click.echo(("Done:" if done else "Plan (nothing changed yet; run again with --yes to proceed):"))
    for number, step in enumerate(plan.steps, 1):
        click.echo(f"  {number}. {step}")
