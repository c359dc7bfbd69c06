"""What every command shares, click's side: the context decorator, the exit codes of click's own
errors, shell completion, the --json option and the commands built from the listing declarations.
The rest (the host, tables, JSON, errors as one sentence) is in cli/output.py, which needs no click."""
from __future__ import annotations

from typing import Callable

import click

from virtops.cli.listings import GLOBAL_OPTIONS, JSON, Listing, Option
from virtops.cli.output import (Context, Failed, _host_notice, emit_fields, emit_fleet_rows, emit_json, emit_table,
                                fleet_failures, run_guarded, table_lines, warn_unreadable)

# What the command modules take from here, output's parts among them.
__all__ = ["Context", "Failed", "_host_notice", "complete", "emit_fields", "emit_fleet_rows", "emit_json",
           "emit_table", "fleet_failures", "global_options", "json_option", "listing_command", "pass_context", "run_main",
           "table_lines", "warn_unreadable"]

pass_context = click.make_pass_decorator(Context)


def run_main(cli: click.Group, argv: list[str] | None = None) -> int:
    """Run the click command line on argv (sys.argv[1:] when None); its exit code."""
    def click_main() -> int:
        try:
            cli.main(argv, standalone_mode=False)
            return 0
        except click.exceptions.Exit as done:
            return done.exit_code
        except click.Abort:
            click.echo("Aborted.", err=True)
            return 1
        except click.ClickException as usage:
            usage.show()
            return 2
    return run_guarded(click_main)


def complete(kind: str) -> Callable:
    """Shell completion of the names of existing objects ("vm", "network", "pool", "volume") on
    the host the command line names with -c (or the default one). Says nothing when the host
    does not answer: a completion must never print an error into the operator's command line."""
    def names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        from virtops.host import Host

        try:
            host = Host(ctx.find_root().params.get("uri"))
            host.connection.event_loop = False
            try:
                return [name for name in host.names(kind) if name.startswith(incomplete)]
            finally:
                host.close()
        except Exception:  # noqa: BLE001 - see the docstring
            return []
    return names


def json_option(func: Callable) -> Callable:
    return click_option(JSON)(func)


def click_option(option: Option) -> Callable:
    if option.metavar:
        return click.option(*option.names, option.dest, metavar=option.metavar, help=option.help)
    return click.option(*option.names, option.dest, is_flag=True, help=option.help)


def global_options(func: Callable) -> Callable:
    """The root's -c, -H and --debug (cli/listings.py declares them for both parsers)."""
    for option in reversed(GLOBAL_OPTIONS):
        func = click_option(option)(func)
    return func


def listing_command(listing: Listing, fleet: bool = False) -> click.Command:
    """The click command of a listing declared in cli/listings.py (its -H version with fleet), for
    what cli/quick.py leaves to click: --help, usage errors, shell completion, odd spellings."""
    body = listing.fleet if fleet else listing.run

    def run(ctx: Context, **params) -> None:
        body(ctx, **params)

    run.__doc__ = body.__doc__
    command = pass_context(run)
    for flag in reversed(listing.flags):
        command = click_option(flag)(command)
    for arg in reversed(listing.args):
        command = click.argument(arg.name, metavar=arg.metavar,
                                 shell_complete=complete(arg.complete) if arg.complete else None)(command)
    return click.command(listing.name)(command)
