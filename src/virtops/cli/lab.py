"""`virtops lab`: sandboxed lab hosts with a real libvirtd."""
from __future__ import annotations

from pathlib import Path

import click

from virtops.cli.common import emit_json, emit_table, json_option


@click.group()
def lab() -> None:
    """Lab hosts: private libvirtd daemons in their own namespaces."""


@lab.command("up")
@click.argument("name")
@click.option("--uplink", is_flag=True, help="Add a veth 'physical' link to an 'outside' namespace.")
@click.option("--segment", metavar="SEG", help="Join the shared 'physical' segment SEG (created by its first lab).")
@click.option("--ssh", is_flag=True, help="Also run the lab's own sshd on its uplink (implies --uplink).")
def lab_up(name: str, uplink: bool, segment: str | None, ssh: bool) -> None:
    """Start lab host NAME (idempotent); returns once its libvirtd answers."""
    from virtops.lab.labhost import Lab

    status = Lab(name).up(uplink=uplink, segment=segment, ssh=ssh)
    click.echo(f"lab {name} is running: connect with -c lab:{name} ({status.uri})")
    if status.ssh_uri:
        click.echo(f"over ssh from its outside namespace: {status.ssh_uri}")
    if status.segment:
        address = status.segment_address.split("/")[0]
        click.echo(f"on segment {status.segment} as {status.segment_address}: the other labs reach its libvirtd "
                   f"at qemu+tcp://{address}/system")


@lab.command("down")
@click.argument("name")
@click.option("--keep-state", is_flag=True, help="Keep the lab's state directory (its libvirt configuration and images).")
def lab_down(name: str, keep_state: bool) -> None:
    """Stop lab host NAME and remove everything it started."""
    from virtops.lab.labhost import Lab

    Lab(name).down(remove_state=not keep_state)
    click.echo(f"lab {name} is down")


@lab.command("list")
@json_option
def lab_list(as_json: bool) -> None:
    """List lab hosts and whether they run."""
    from virtops.lab.labhost import list_labs

    labs = [s.as_dict() for s in list_labs()]
    if as_json:
        emit_json(labs)
    else:
        emit_table(labs, [("name", "Name"), ("state", "State"), ("uplink", "Uplink"), ("segment", "Segment"),
                          ("segment_address", "Address"),
                          ("libvirtd_pid", "libvirtd"), ("uri", "URI"), ("detail", "Detail")])


@lab.command("guest-image")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Cache directory (default /var/cache/virtops/guest).")
@json_option
def lab_guest_image(output: Path | None, as_json: bool) -> None:
    """Build (or reuse) the tiny test guest: Debian's kernel and a busybox initramfs."""
    from virtops.testguest.image import build_guest_image

    image = build_guest_image(output)
    info = {"kernel": str(image.kernel), "initrd": str(image.initrd),
            "kernel_version": image.kernel_version, "digest": image.digest}
    if as_json:
        emit_json(info)
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")
