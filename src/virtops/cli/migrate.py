"""`virtops vm migrate` and `virtops host evacuate`: thin faces over virtops.ops.migrate."""
from __future__ import annotations

import click

from virtops.cli.common import Failed, emit_json, emit_table, given_fields, request_of
from virtops.cli.output import in_cli_words


def run_migrate(ctx, name: str, to: str, options: dict, as_json: bool) -> None:
    from virtops.cli.vol import progress_bar
    from virtops.ops.migrate import MigrateRequest, migrate_to

    request = request_of(MigrateRequest, name=name, **given_fields(MigrateRequest, options))
    with progress_bar(f"moving {name} to {to}") as bar:
        result = migrate_to(ctx.host(), to, request,
                            progress=(lambda p: bar(p.processed, p.total)) if bar else None)
    if as_json:
        emit_json(result.as_dict())
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    copied = f", disks copied: {', '.join(result.copied_disks)}" if result.copied_disks else ""
    click.echo(f"VM {name} moved {'live' if result.live else 'offline'} to {to} in {result.seconds:.1f} s{copied}.")


def run_evacuate(ctx, to: tuple[str, ...], copy_storage: bool, dry_run: bool, as_json: bool) -> None:
    from virtops.ops.migrate import evacuate_to

    def show(step) -> None:
        if not as_json and not dry_run:
            click.echo(f"{step.name}: {_result_text(step)}", err=True)

    others = None if to else [host.name for host in ctx.fleet()]
    steps = evacuate_to(ctx.host(), list(to), copy_storage=copy_storage, dry_run=dry_run, on_step=show,
                        others_of=others)
    incomplete = not dry_run and any(s.result.startswith("failed") or s.result == "left" for s in steps)
    if as_json:
        emit_json(in_cli_words([step.as_dict() for step in steps]))
    else:
        _table(steps, dry_run)
    if incomplete:
        raise Failed()


def _table(steps, dry_run: bool) -> None:
    rows = [{"name": s.name, "to": s.destination or "-", "result": _result_text(s)} for s in steps]
    emit_table(rows, [("name", "VM"), ("to", "To"), ("result", "Result")],
               title="Planned moves (nothing moved: --dry-run)" if dry_run else None)


def _result_text(step) -> str:
    """The step's sentences in the command line's terms (a reason may be a refusal's: --copy-storage)."""
    if step.result == "left":
        return in_cli_words("stays: " + "; ".join(f"{label}: {why}" for label, why in step.reasons.items()))
    return in_cli_words(step.result)
