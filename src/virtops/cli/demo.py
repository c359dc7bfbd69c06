"""`virtops demo`: the reference scenario (../shared/SCENARIO.md) on a fresh lab host, step by step."""
from __future__ import annotations

import os

import click

from .common import emit_fields

DEMO_LAB = "demo"


def step(number: str, what: str, virsh: str | None = None) -> None:
    click.secho(f"\n[{number}] {what}", bold=True)
    if virsh:
        click.echo(f"      (with virsh: {virsh})")


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the lab host running afterwards (connect with -c lab:demo).")
def demo(keep: bool) -> None:
    """Run the handbook's scenario end to end on a fresh lab host."""
    from ..host import Host
    from ..lab.labhost import Lab
    from ..units import format_size

    lab = Lab(os.environ.get("VIRTOPS_DEMO_LAB", DEMO_LAB))
    if lab.exists():
        lab.down()
    step("0", f"Start lab host '{lab.name}': a private libvirtd in its own namespaces")
    lab.up(uplink=True)
    host = Host(lab.uri)
    try:
        step("0", "Check whether this machine boots guests with KVM or only with TCG emulation")
        check = host.check()
        for label, boot in (("KVM", check.kvm), ("TCG", check.tcg)):
            click.echo(f"      {label}: " + (f"boots the test guest in {boot.boot_seconds} s" if boot.usable
                                            else f"not usable ({boot.reason})"))
        step("0", "Inventory of the lab host", "virsh nodeinfo; virsh net-list --all; virsh pool-list --all")
        info = host.info()
        emit_fields([("Hypervisor", f"{info.hypervisor} {info.hypervisor_version}"), ("libvirt", info.libvirt_version),
                     ("CPUs", info.cpus), ("Memory", format_size(info.memory_bytes)),
                     ("Networks", info.networks), ("Storage pools", info.pools), ("Domains", info.domains),
                     ("Guest type", info.virt_type)])
    finally:
        host.close()
        if keep:
            click.echo(f"\nThe lab host is still running: virtops -c lab:{lab.name} ...; remove it with `virtops lab down {lab.name}`.")
        else:
            lab.down()
            click.echo(f"\nLab host '{lab.name}' removed.")
