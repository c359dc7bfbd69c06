"""`virtops backup`: the whole host's configuration in one archive; restore and diff."""
from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Iterator

import click

from virtops.cli.common import emit_json, json_option, pass_context
from virtops.cli.output import in_cli_words


@click.group()
def backup() -> None:
    """Back up and restore the host's configuration (pools, volumes, networks, VMs)."""


@backup.command("create")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="FILE.tar.gz or a new directory.")
@click.option("--with-data", "with_data", metavar="POOL/VOL", multiple=True,
              help="Also store this volume's data, sparsely (repeatable).")
@pass_context
def backup_create(ctx, output: Path | None, with_data: tuple[str, ...]) -> None:
    """Back up every pool, volume's metadata, network and domain, with checksums."""
    from virtops.backup.archive import create_backup, default_output_name

    host = ctx.host()
    target = output or default_output_name(host)
    archive = create_backup(host, target, list(with_data))
    counts = _counts(archive.objects)
    data = f" and the data of {len(with_data)} volumes" if with_data else ""
    click.echo(f"backed up {counts}{data} to {target}")


@backup.command("restore")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--only", type=click.Choice(["pools", "volumes", "networks", "vms"]), multiple=True,
              help="Restore only these kinds (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--replace", is_flag=True, help="Overwrite objects that exist and differ from the backup.")
@click.option("--force", is_flag=True, help="Replace networks and pools even though running VMs use them.")
@json_option
@pass_context
def backup_restore(ctx, source: Path, only: tuple[str, ...], dry_run: bool, replace: bool, force: bool,
                   as_json: bool) -> None:
    """Re-create what is missing, in dependency order: pools, volumes, networks, domains."""
    from virtops.backup.archive import plan_restore, read_backup, restore
    from virtops.base.errors import VirtopsError

    with sigterm_interrupts():
        archive = read_backup(source, with_data=not dry_run)
    host = ctx.host()
    steps = plan_restore(host, archive, list(only), replace)
    if dry_run:
        _print_plan(steps, as_json)
        return
    result = restore(host, archive, steps, force=force)
    for key in result.done:
        click.echo(f"restored {key}")
    skipped = sum(1 for s in steps if s.action == "skip")
    if result.failed:
        raise VirtopsError(f"restore stopped at {result.failed} after restoring {len(result.done)} objects; "
                           f"{len(result.remaining)} remain ({', '.join(result.remaining)}); run it again once fixed.")
    click.echo(f"restore complete: {len(result.done)} restored, {skipped} already present")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While an archive is unpacked, SIGTERM ends the command like Ctrl-C does, so the scratch
    folder is removed on the way out (by default SIGTERM ends Python without any cleanup)."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_plan(steps, as_json: bool) -> None:
    if as_json:
        emit_json([{"action": s.action, "object": s.obj.key, "reason": in_cli_words(s.reason)} for s in steps])
        return
    for s in steps:
        click.echo(f"{s.action:8} {s.obj.key}" + (f"  ({in_cli_words(s.reason)})" if s.reason else ""))


@backup.command("diff")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@json_option
@pass_context
def backup_diff(ctx, source: Path, as_json: bool) -> None:
    """What differs between the backup and the live host, per object."""
    from virtops.backup.archive import diff, read_backup

    with sigterm_interrupts():
        archive = read_backup(source, with_data=False)
    differences = diff(ctx.host(), archive)
    if as_json:
        emit_json([d.__dict__ for d in differences])
        return
    if not differences:
        click.echo("no differences")
    for d in differences:
        click.echo(f"{d.state:15} {d.key}")
        if d.diff:
            click.echo("\n".join("    " + line for line in d.diff.splitlines()))


def _counts(objects) -> str:
    from collections import Counter

    counts = Counter(o.kind for o in objects)
    return ", ".join(f"{counts[k]} {k}s" for k in ("pool", "volume", "network", "domain"))
