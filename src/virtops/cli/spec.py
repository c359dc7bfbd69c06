"""`virtops plan`, `apply`, `export`: a host kept in a YAML file. A thin face over virtops.spec.document
(the file) and virtops.spec.plan (the comparison and the core operations that close it)."""
from __future__ import annotations

import json
import sys

import click

from virtops.cli.common import emit_json, fleet_failures, json_option, pass_context
from virtops.cli.output import in_cli_words

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
            click.echo(f"    note: {in_cli_words(note)}")
        if action.disruptive:
            click.echo("    needs --yes")
    if plan.kept and not prune:
        click.echo(f"= not in the spec, kept (--prune deletes them): {', '.join(plan.kept)}")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if plan.actions:
        click.echo(f"Plan: {in_cli_words(plan.summary())}")


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
    if _is_fleet(ctx, loaded):
        return _plan_fleet(ctx, loaded, prune, as_json)
    result = make_plan(ctx.host(), loaded, prune=prune)
    if as_json:
        emit_json(in_cli_words(result.as_dict()))
        return
    show_plan(result, prune)


def _is_fleet(ctx, loaded) -> bool:
    """A fleet spec (hosts:) names its hosts; -H applies a spec to the hosts it selects."""
    from virtops.spec.document import LoadedFleet

    if isinstance(loaded, LoadedFleet) and ctx.uri:
        raise click.UsageError(f"-c/--connect: {loaded.file} names its hosts (hosts:); drop -c, or select "
                               "some of them with -H.")
    return bool(ctx.hosts) or isinstance(loaded, LoadedFleet)


def _plan_fleet(ctx, loaded, prune: bool, as_json: bool) -> None:
    from virtops.spec.fleet import plan_fleet, targets

    planned = plan_fleet(targets(loaded, ctx.hosts), prune)
    if as_json:
        emit_json(in_cli_words(planned.as_dict()))
    else:
        _show_plans(planned, prune)
    refused = planned.refusal()
    if refused:
        raise refused


def _show_plans(planned, prune: bool) -> None:
    for name, one in planned.plans:
        click.echo(f"host {name}:")
        show_plan(one, prune)


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
    if _is_fleet(ctx, loaded):
        return _apply_fleet(ctx, loaded, yes, prune, as_json)
    shown = []
    show = shown.append if as_json else (lambda first: show_plan(first, prune))
    echo = None if as_json else (lambda label: click.echo(f"done: {label}"))
    try:
        result = run_apply(ctx.host(), loaded, yes=yes, prune=prune, progress=echo, on_plan=show)
    except Exception:
        if as_json and shown:
            emit_json(in_cli_words({"done": [], "plan": shown[0].as_dict()}))
        raise
    if as_json:
        emit_json(in_cli_words({"done": result.done, "plan": result.plan.as_dict()}))
    elif result.done:
        click.echo(f"Applied: {len(result.done)} step(s).")


def _apply_fleet(ctx, loaded, yes: bool, prune: bool, as_json: bool) -> None:
    from virtops.spec.fleet import apply_fleet, targets

    shown = []
    show = shown.append if as_json else (lambda planned: _show_plans(planned, prune))
    echo = None if as_json else (lambda host, label: click.echo(f"done: {host}: {label}"))
    try:
        applied = apply_fleet(targets(loaded, ctx.hosts), yes=yes, prune=prune, progress=echo, on_plan=show)
    except Exception:
        if as_json and shown:
            emit_json(in_cli_words({"hosts": {}, "plan": shown[0].as_dict()}))
        raise
    if as_json:
        emit_json(in_cli_words({"hosts": {a.host.name: {"done": a.value.done} if a.ok else {"error": a.error}
                                          for a in applied.answers}, "plan": shown[0].as_dict()}))
    else:
        for answer in applied.answers:
            if answer.ok and answer.value.done:
                click.echo(f"host {answer.host.name}: applied {len(answer.value.done)} step(s).")
    fleet_failures(applied.failures)


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@click.option("--schema", is_flag=True, help="Print the spec's JSON Schema instead (needs no host).")
@pass_context
def export(ctx, output, schema) -> None:
    """Write the live host as a spec (with -H: the selected hosts, as one fleet spec); `plan` with it
    right away shows no changes."""
    from virtops.spec.document import json_schema, to_yaml

    failures = []
    if schema:
        text = json.dumps(json_schema(), indent=2) + "\n"
    elif ctx.hosts:
        from virtops.spec.fleet import export_fleet

        fleet, warnings, gathered = export_fleet(ctx.fleet())
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        text, failures = to_yaml(fleet), gathered.failures
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
    fleet_failures(failures)


# plan, apply and export handle -H themselves (a fleet spec, or one host's spec on every selected host).
plan.fleet = apply.fleet = export.fleet = True
