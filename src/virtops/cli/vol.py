"""`virtops vol`: storage volumes. A thin face: every rule lives in virtops.ops.volume."""
from __future__ import annotations

import contextlib
import sys

import click

from virtops.xmlmodels.values import VOLUME_FORMATS
from virtops.cli.common import ModelCommand, complete, emit_json, json_option, listing_command, pass_context
from virtops.cli.listings import BY_PATH

@contextlib.contextmanager
def progress_bar(label: str):
    """A rich progress bar on a terminal; nothing when output is piped. Yields a (done, total) callback."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _warn(warnings) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@click.group()
def vol() -> None:
    """Storage volumes, addressed as POOL/VOLUME."""


for _listing in ("list", "info"):
    vol.add_command(listing_command(BY_PATH["vol", _listing]))


def _volume_request_model() -> type:
    from virtops.ops.volume import VolumeRequest

    return VolumeRequest


@vol.command("create", cls=ModelCommand, model=_volume_request_model, leave_out=("name",),
             extra={"capacity": {"metavar": "SIZE"}, "allocation": {"metavar": "SIZE"},
                    "format": {"type": click.Choice(VOLUME_FORMATS)}, "backing": {"metavar": "POOL/VOL"}})
@click.argument("pool", shell_complete=complete("pool"))
@click.argument("name")
@click.argument("size", required=False, metavar="[CAPACITY]")
@json_option
@pass_context
def vol_create(ctx, pool, name, size, as_json, **fields) -> None:
    """Create a volume (virsh vol-create-as POOL NAME CAPACITY); its fields as options
    (VolumeRequest's), the capacity as the third argument too."""
    if size and fields["capacity"] and size != fields["capacity"]:
        raise click.UsageError("give the capacity once: as the third argument or as --capacity.")
    fields["capacity"] = fields["capacity"] or size
    if not fields["capacity"]:
        raise click.UsageError("give a capacity: vol create POOL NAME 1000M, or --capacity 1000M.")
    with progress_bar(f"allocating {pool}/{name}") as progress:
        result = ctx.host().volumes.create(pool, name, **fields, progress=progress)
    _warn(result.warnings)
    if as_json:
        emit_json(result.volume.model_dump())
        return
    click.echo(f"Volume {pool}/{name} created: {result.volume.path}.")


@vol.command("dumpxml")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@pass_context
def vol_dumpxml(ctx, volume, output) -> None:
    """The volume's XML, as libvirt has it."""
    text = ctx.host().volumes.dumpxml(volume)
    if output:
        with open(output, "w") as out:
            out.write(text)
        click.echo(f"Volume {volume} XML written to {output}.", err=True)
    else:
        click.echo(text, nl=False)


@vol.command("resize")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.argument("size")
@click.option("--shrink", is_flag=True, help="Allow a smaller capacity (never below the allocation).")
@click.option("--force", is_flag=True, help="Shrink even a disk of a running VM.")
@pass_context
def vol_resize(ctx, volume, size, shrink, force) -> None:
    """Set a new capacity."""
    from virtops.base.units import format_size

    result = ctx.host().volumes.resize(volume, size, shrink=shrink, force=force)
    _warn(result.warnings)
    click.echo(f"Volume {volume} now has a capacity of {format_size(result.volume.capacity)}.")


@vol.command("clone")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.argument("new_name")
@click.option("--linked", is_flag=True, help="A qcow2 overlay on the original: instant, shares its data.")
@pass_context
def vol_clone(ctx, volume, new_name, linked) -> None:
    """Copy a volume within its pool."""
    with progress_bar(f"cloning {volume}") as progress:
        result = ctx.host().volumes.clone(volume, new_name, linked=linked, progress=progress)
    _warn(result.warnings)
    click.echo(f"Volume {result.volume.pool}/{new_name} created{' (linked to ' + volume + ')' if linked else ''}.")


@vol.command("wipe")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.option("--algorithm", default="zero", show_default=True, help="zero, nnsa, dod, bsi, gutmann, schneier, "
              "pfitzner7, pfitzner33, random, trim.")
@click.option("--force", is_flag=True, help="Wipe even though VMs use it.")
@pass_context
def vol_wipe(ctx, volume, algorithm, force) -> None:
    """Overwrite a volume's data."""
    users = ctx.host().volumes.wipe(volume, algorithm, force=force)
    if users:
        click.echo(f"warning: wiped although these use it: {', '.join(users)}.", err=True)
    click.echo(f"Volume {volume} wiped ({algorithm}).")


@vol.command("delete")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.option("--force", is_flag=True, help="Delete even though VMs use it.")
@pass_context
def vol_delete(ctx, volume, force) -> None:
    """Delete a volume; refused while any VM (running or defined) uses it."""
    users = ctx.host().volumes.delete(volume, force=force)
    if users:
        click.echo(f"warning: deleted although these used it: {', '.join(users)}; their disk or backing file is now missing.", err=True)
    click.echo(f"Volume {volume} deleted.")


@vol.command("upload")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Upload even though VMs use the volume.")
@pass_context
def vol_upload(ctx, volume, file, force) -> None:
    """Copy an image file into a volume, written in place; its holes do not cross the wire."""
    from virtops.base.units import format_size

    with progress_bar(f"uploading {file}") as progress:
        result = ctx.host().volumes.upload(volume, file, force=force, progress=progress)
    click.echo(f"Uploaded {file} to {volume}: {format_size(result.size)}, {format_size(result.data_bytes)} of data sent.")


@vol.command("download")
@click.argument("volume", metavar="POOL/VOL", shell_complete=complete("volume"))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@pass_context
def vol_download(ctx, volume, file, overwrite) -> None:
    """Copy a volume into a local file, keeping holes as holes (sparse stream)."""
    from virtops.base.units import format_size

    with progress_bar(f"downloading {volume}") as progress:
        result = ctx.host().volumes.download(volume, file, overwrite=overwrite, progress=progress)
    click.echo(f"Downloaded {volume} to {file}: {format_size(result.size)}, {format_size(result.data_bytes)} of data received.")
