"""`virtops plan`, `apply`, `export`: a host kept in a YAML file. A thin face over virtops.spec.document
(the file) and virtops.spec.plan (the comparison and the core operations that close it)."""
from __future__ import annotations

import json
import sys

import click

from virtops.cli.common import emit_json, json_option, pass_context

MARKS = {"create": "+", "update": "~", "delete": "-"}


def _spec_file(func):
    return click.option("-f", "--file", "spec_file", required=True, type=click.Path(dir_okay=False),
                        metavar="HOST.yaml", help="The spec file.")(func)


def _prune(func):
    return click.option("--prune", is_flag=True,
                        help="Also delete what the host has and the spec does not (in reverse dependency order).")(func)


def show_plan(plan, prune: bool) -> None:
    if not plan.actions:
        click.echo("No changes: the host matches the spec.")
    for action in plan.actions:
        mode = "" if action.verb != "update" else f" ({action.mode})"
        click.echo(f"{MARKS[action.verb]} {action.verb} {action.label}{mode}")
        for change in action.changes:
            click.echo(f"    {_change_line(action, change)}")
        for note in action.notes:
            click.echo(f"    note: {note}")
        if action.disruptive:
            click.echo("    needs --yes")
    if plan.kept and not prune:
        click.echo(f"= not in the spec, kept (--prune deletes them): {', '.join(plan.kept)}")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if plan.actions:
        click.echo(f"Plan: {plan.summary()}")


def _change_line(action, change) -> str:
    from virtops.spec.plan import _show

    if action.verb == "create" or change.old is None and change.field in ("hosts",):
        return f"{change.field}: {_show(change.field, change.new)}" if change.old is None else change.text()
    if change.new is None and change.field == "hosts":
        return f"{change.field}: remove {change.old}"
    return change.text()


@click.command()
@_spec_file
@_prune
@json_option
@pass_context
def plan(ctx, spec_file, prune, as_json) -> None:
    """Show what `apply` would change: create, update (live, needs-restart or impossible), delete."""
    from virtops.spec.plan import make_plan
    from virtops.spec.document import load

    loaded = load(spec_file)
    result = make_plan(ctx.host(), loaded, prune=prune)
    if as_json:
        emit_json(result.as_dict())
        return
    show_plan(result, prune)


@click.command()
@_spec_file
@click.option("--yes", is_flag=True, help="Go ahead with steps that restart a network or re-plug a running guest's device.")
@_prune
@json_option
@pass_context
def apply(ctx, spec_file, yes, prune, as_json) -> None:
    """Make the host match the spec through the same operations as the CLI; safe to re-run."""
    from virtops.spec.plan import apply as run_apply
    from virtops.spec.document import load

    loaded = load(spec_file)
    shown = []
    show = shown.append if as_json else (lambda first: show_plan(first, prune))
    echo = None if as_json else (lambda label: click.echo(f"done: {label}"))
    try:
        result = run_apply(ctx.host(), loaded, yes=yes, prune=prune, progress=echo, on_plan=show)
    except Exception:
        if as_json and shown:
            emit_json({"done": [], "plan": shown[0].as_dict()})
        raise
    if as_json:
        emit_json({"done": result.done, "plan": result.plan.as_dict()})
    elif result.done:
        click.echo(f"Applied: {len(result.done)} step(s).")


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@click.option("--schema", is_flag=True, help="Print the spec's JSON Schema instead (needs no host).")
@pass_context
def export(ctx, output, schema) -> None:
    """Write the live host as a spec: `plan` with it right away shows no changes."""
    from virtops.spec.document import json_schema, to_yaml

    if schema:
        text = json.dumps(json_schema(), indent=2) + "\n"
    else:
        from virtops.spec.plan import export as read_host

        spec, warnings = read_host(ctx.host())
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        text = to_yaml(spec)
    if output:
        with open(output, "w") as out:
            out.write(text)
        click.echo(f"Wrote {output}.", err=True)
    else:
        sys.stdout.write(text)
