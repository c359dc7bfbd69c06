"""`virtops host`: facts about a host, and whether it runs guests with KVM or TCG."""
from __future__ import annotations

import click

from virtops.cli.common import emit_json, emit_table, json_option, listing_command, pass_context
from virtops.cli.listings import BY_PATH
from virtops.cli.output import answer_error


@click.group()
def host() -> None:
    """Facts about the host."""


host.add_command(listing_command(BY_PATH["host", "info"]))


@host.command("check")
@json_option
@pass_context
def host_check(ctx, as_json: bool) -> None:
    """Boot the test guest with KVM and with TCG; report which works and how fast."""
    if not as_json:
        click.echo("Booting the test guest with KVM, then with TCG (emulation)...", err=True)
    result = ctx.host().check()
    if as_json:
        emit_json(result.model_dump())
        return
    for label, boot in (("KVM", result.kvm), ("TCG", result.tcg)):
        verdict = f"usable, guest booted and reported in {boot.boot_seconds} s" if boot.usable else f"not usable: {boot.reason}"
        click.echo(f"{label}: {verdict}")
    click.echo(f"New guests on this host use domain type '{result.chosen}'"
               + (" (KVM does not boot guests here; using QEMU's TCG emulation)." if result.chosen == "qemu" else "."))


# -- the registry (daemon/registry.py) ---------------------------------------------------------
@host.command("evacuate")
@click.argument("source")
@click.option("--to", "to", multiple=True,
              help="A destination host (repeat for several); default: every other host -H selects (all: the "
                   "registry and the running lab hosts).")
@click.option("--copy-storage", is_flag=True, help="Copy the disks that are not on storage both hosts share.")
@click.option("--dry-run", is_flag=True, help="Show the plan; move nothing.")
@json_option
@pass_context
def host_evacuate(ctx, source: str, to: tuple[str, ...], copy_storage: bool, dry_run: bool, as_json: bool) -> None:
    """Move every running VM of SOURCE (a registered name, lab:NAME or a URI) to the --to hosts
    (or every other host -H selects) that can take it, balanced by free memory; VMs no host can
    take stay and are named."""
    from virtops.cli.migrate import run_evacuate

    ctx.uri = source
    run_evacuate(ctx, to, copy_storage, dry_run, as_json)


@host.command("add")
@click.argument("name")
@click.argument("uri")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag for -H tag:TAG (repeatable).")
def host_add(name: str, uri: str, tags: tuple[str, ...]) -> None:
    """Register host NAME at libvirt URI URI (qemu+ssh://root@host/system, qemu+tls://..., lab:NAME)."""
    from virtops.daemon import registry

    added = registry.add(name, uri, tags)
    click.echo(f"host {added.name} added ({added.uri}" + (f", tags {', '.join(added.tags)}" if added.tags else "")
               + f") to {registry.user_file()}")


@host.command("remove")
@click.argument("name")
def host_remove(name: str) -> None:
    """Take host NAME out of the registry (the host itself is not touched)."""
    from virtops.daemon import registry

    removed = registry.remove(name)
    click.echo(f"host {removed.name} removed from {registry.user_file()}")


@host.command("tag")
@click.argument("name")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@click.option("--remove", "untag", is_flag=True, help="Take the tags away instead.")
def host_tag(name: str, tags: tuple[str, ...], untag: bool) -> None:
    """Add tags to host NAME (or take them away with --remove)."""
    from virtops.daemon import registry

    changed = registry.tag(name, tags, untag=untag)
    click.echo(f"host {changed.name}: tags {', '.join(changed.tags) or 'none'}")


@host.command("list")
@json_option
@pass_context
def host_list(ctx, as_json: bool) -> None:
    """Registered hosts and running lab hosts (or those -H selects): reachable or why not, versions,
    CPUs, memory, VMs, KVM or TCG. Every host is asked at once."""
    from virtops.daemon.facts import CPU_WINDOW_S
    from virtops.fleet.listings import infos

    rows = [_host_row(answer) for answer in infos(ctx.fleet() if ctx.hosts else _every_host(), CPU_WINDOW_S).answers]
    if as_json:
        emit_json(rows)
        return
    emit_table([_host_cells(row) for row in rows],
               [("name", "Name"), ("uri", "URI"), ("tags", "Tags"), ("reachable", "Reachable"), ("libvirt", "libvirt"),
                ("qemu", "QEMU"), ("cpus", "CPUs"), ("memory", "Memory used/total"), ("vms", "VMs running/total"),
                ("guest", "Guest type")])


def _every_host() -> list:
    from virtops.fleet.select import every_host

    return every_host()


def _host_row(answer) -> dict:
    row = {**answer.host.as_dict(), "reachable": answer.ok, "reason": answer_error(answer)}
    info = answer.value[0] if answer.ok else None
    info = info or {}
    row.update({
        "libvirt_version": info.get("libvirt_version"),
        "qemu_version": info.get("hypervisor_version"),
        "cpus": info.get("cpus"),
        "memory_bytes": info.get("memory_bytes"),
        "memory_used_bytes": info.get("memory_used_bytes"),
        "cpu_percent": info.get("cpu_percent"),
        "vms": info.get("domains"),
        "vms_running": info.get("running_domains"),
        "virt_type": info.get("virt_type"),  # from the remembered host check
    })
    return row


def _host_cells(row: dict) -> dict:
    from virtops.base.units import format_size

    answered = row["reachable"]
    guest = {"kvm": "KVM", "qemu": "TCG"}.get(row["virt_type"] or "", "not checked") if answered else None
    return {
        "name": row["name"], "uri": row["uri"], "tags": ",".join(row["tags"]) or None,
        "reachable": "yes" if answered else f"no: {row['reason']}",
        "libvirt": row["libvirt_version"], "qemu": row["qemu_version"], "cpus": row["cpus"],
        "memory": f"{format_size(row['memory_used_bytes'])} / {format_size(row['memory_bytes'])}" if answered else None,
        "vms": f"{row['vms_running']}/{row['vms']}" if answered else None, "guest": guest,
    }
