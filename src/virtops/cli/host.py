"""`virtops host`: facts about a host, and whether it runs guests with KVM or TCG."""
from __future__ import annotations

import click

from virtops.cli.common import emit_fields, emit_json, json_option, pass_context


@click.group()
def host() -> None:
    """Facts about the host."""


@host.command("info")
@json_option
@pass_context
def host_info(ctx, as_json: bool) -> None:
    """Hypervisor, versions, CPUs, memory, object counts, KVM or TCG."""
    from virtops.base.units import format_size

    info = ctx.host().info()
    if as_json:
        emit_json(info.model_dump())
        return
    emit_fields([
        ("URI", info.uri), ("Hostname", info.hostname), ("Hypervisor", info.hypervisor),
        ("libvirt", info.libvirt_version), ("QEMU", info.hypervisor_version),
        ("CPU model", info.cpu_model), ("CPUs", info.cpus),
        ("Memory", format_size(info.memory_bytes)), ("Free memory", format_size(info.free_memory_bytes)),
        ("Storage pools", info.pools), ("Networks", info.networks),
        ("Domains", f"{info.domains} ({info.running_domains} running)"),
        ("Guest type", f"{info.virt_type or '-'} ({info.virt_type_source})"),
    ])


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
