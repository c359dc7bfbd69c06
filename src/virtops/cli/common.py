"""What every command shares, click's side: the context decorator, the exit codes of click's own
errors, shell completion, the --json option and the commands built from the listing declarations.
The rest (the host, tables, JSON, errors as one sentence) is in cli/output.py, which needs no click."""
from __future__ import annotations

import functools
from typing import Callable

import click

from virtops.cli.listings import GLOBAL_OPTIONS, JSON, Listing, Option
from virtops.cli.output import (Context, Failed, _host_notice, emit_fields, emit_fleet_rows, emit_json, emit_table,
                                fleet_failures, note_command_options, run_guarded, table_lines, warn_unreadable)

# What the command modules take from here, output's parts among them.
__all__ = ["Context", "Failed", "_host_notice", "complete", "emit_fields", "emit_fleet_rows", "emit_json",
           "emit_table", "fleet_failures", "global_options", "json_option", "listing_command", "pass_context", "run_main",
           "table_lines", "warn_unreadable"]

_pass_context = click.make_pass_decorator(Context)


def pass_context(func: Callable) -> Callable:
    """click's pass decorator of our Context; it also notes the command's options, so that a
    refusal of the core words its terms as this command's own options (cli/output.in_cli_terms)."""
    passing = _pass_context(func)

    @functools.wraps(passing)
    def run(*args, **kwargs):
        note_command_options([(param.name, param.opts, param.secondary_opts)
                              for param in click.get_current_context().command.params
                              if isinstance(param, click.Option) and param.name])
        return passing(*args, **kwargs)
    return run


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


# -- commands whose options are a request model's fields ---------------------------------------------
class ModelCommand(click.Command):
    """A command with an option per field of a core request model (ops/devices.py's DiskRequest,
    NicRequest): names, help, flags and lists come from the model, so no option is declared again.
    The options are made when the command is first parsed, completed or shown: the model's module
    imports pydantic, which the listings never load."""

    def __init__(self, *args, model: Callable[[], type], leave_out: tuple[str, ...] = (),
                 extra: dict[str, dict] | None = None, **kwargs):
        self._model, self._leave_out, self._extra, self._made = model, leave_out, extra or {}, False
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if not self._made:
            self._made = True
            self._params = self._params + model_options(self._model(), self._leave_out, self._extra)
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._params = value


def model_options(model: type, leave_out: tuple[str, ...], extra: dict[str, dict]) -> list[click.Option]:
    """--FIELD for each field of the model: a flag for a bool, --FIELD/--no-FIELD for a bool that may
    be None, repeatable for a list, a whole number for an int, required when the model requires it,
    the choices its schema lists in the help; None when not given (the model's default then holds).
    `extra` adds what only the command line has, per field: names (a short option, virsh's
    spelling), flag (the option's own name), metavar, a click type."""
    schema = model.model_json_schema()["properties"]
    options = []
    for name, field in model.model_fields.items():
        if name in leave_out:
            continue
        prop = schema[name]
        own = extra.get(name, {})
        choices = prop.get("enum") or next((p["enum"] for p in prop.get("anyOf", []) if "enum" in p), None)
        listed = isinstance(own.get("type"), click.Choice)  # click's usage lists them already
        help_text = " ".join(filter(None, [field.description,
                                           f"One of {', '.join(choices)}." if choices and not listed else None]))
        if isinstance(field.default, str):
            help_text += f" Default: {field.default}."
        settings = {"help": help_text, "default": None, "required": field.is_required()}
        kinds = {p.get("type") for p in prop.get("anyOf", [prop])} - {"null"}
        flag = f"--{name.replace('_', '-')}"
        if isinstance(field.default, bool):
            settings["is_flag"] = True
        elif kinds == {"boolean"}:  # None: as it is (or the default); the pair says on or off
            flag = f"{flag}/--no-{name.replace('_', '-')}"
        elif isinstance(field.default, list):
            settings["multiple"] = True
        elif kinds == {"integer"}:
            settings["type"] = int
        settings.update(own)
        if settings["required"]:
            del settings["default"]  # click counts an explicit None as given
        names = settings.pop("names", ())
        flag = settings.pop("flag", flag)  # a face's own spelling (net host add --hostname)
        options.append(click.Option([flag, *names, name], **settings))
    return options


def given_fields(model: type, values: dict) -> dict:
    """The model's fields among a command's values that the command line gave."""
    return {name: value for name, value in values.items()
            if name in model.model_fields and value is not None and value != () and value is not False}


def request_of(model: type, **values):
    """The core's request model of a command's values. A value the model's own checks refuse (a
    size that is none, vcpus 0) is refused as the core refuses, in one sentence naming its field."""
    from pydantic import ValidationError

    from virtops.base.errors import InvalidInput

    try:
        return model(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "value"
        if first["type"] == "value_error":  # the model's validator: its own sentence
            raise InvalidInput(field, f"{first['ctx']['error']}.") from None
        message = first["msg"]
        raise InvalidInput(field, f"{first.get('input')!r} is not accepted; {message[0].lower()}{message[1:]}.") from None
