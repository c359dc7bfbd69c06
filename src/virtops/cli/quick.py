"""A light argument parser for the listing and info commands (cli/listings.py), so that they start
without importing click (about 40 ms here, more than virsh takes for a whole listing).

It reads only command lines written plainly: the root's options, a listing's name (or virsh's, as
`net-list`), its flags and arguments as declared. Anything else (--help, a usage error, `-al`,
`--json=yes`, shell completion) it leaves to click, which builds its commands from the same
declarations and answers with the same help, messages and exit codes."""
from __future__ import annotations

import os

from virtops.cli.aliases import VIRSH_ALIASES
from virtops.cli.listings import BY_PATH, GLOBAL_OPTIONS, Option
from virtops.cli.output import Context, run_guarded

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Callable


def run_quick(argv: list[str], light_binding: bool = False) -> int | None:
    """The exit code of the listing `argv` names, run here; None when click must read `argv`.
    `light_binding`: the process runs only this command, so a listing calls libvirt through
    base/light_libvirt.py, on one host or a fleet's."""
    parsed = parse(argv)
    if parsed is None:
        return None
    body, ctx, params = parsed
    if not ctx.hosts:
        ctx.event_loop = False  # one short read-only pass: no daemon restart to notice (Connection.event_loop)
    if light_binding:
        from virtops.base.binding import use_light_binding

        use_light_binding()

    def command() -> int:
        body(ctx, **params)
        return 0
    return run_guarded(command)


def parse(argv: list[str]) -> tuple[Callable[..., None], Context, dict] | None:
    """(body, context, parameters) of a plainly written listing command line, else None."""
    if any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ):
        return None  # click's shell completion
    root = {option.dest: None if option.metavar else False for option in GLOBAL_OPTIONS}
    i = 0
    while i < len(argv) and _is_option(argv[i]):
        i = _take(argv, i, GLOBAL_OPTIONS, root)
        if i is None:
            return None
    if root["uri"] and root["hosts"]:
        return None  # click says why not both
    words = argv[i:]
    if words and words[0] in VIRSH_ALIASES:
        path, rest = VIRSH_ALIASES[words[0]], words[1:]
    else:
        path, rest = tuple(words[:2]), words[2:]
    listing = BY_PATH.get(path)
    if listing is None or (root["hosts"] and listing.fleet is None):
        return None
    params = {option.dest: False for option in listing.flags}
    positional = []
    i = 0
    while i < len(rest):
        if not _is_option(rest[i]):
            positional.append(rest[i])
            i += 1
        elif (i := _take(rest, i, listing.flags, params)) is None:
            return None
    if len(positional) != len(listing.args):
        return None
    params.update({arg.name: value for arg, value in zip(listing.args, positional)})
    body = listing.fleet if root["hosts"] else listing.run
    return body, Context(uri=root["uri"], hosts=root["hosts"], debug=root["debug"]), params


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-"


def _take(tokens: list[str], i: int, options: tuple[Option, ...], values: dict) -> int | None:
    """Read the option at tokens[i] into values; the index after it, or None if it is not one of
    `options` as declared (a value as the next token, or --name=value)."""
    name, equals, value = tokens[i].partition("=")
    option = next((o for o in options if (name if equals and name.startswith("--") else tokens[i]) in o.names), None)
    if option is None or (equals and not option.metavar):
        return None
    if option.metavar is None:
        values[option.dest] = True
        return i + 1
    if equals:
        values[option.dest] = value
        return i + 1
    if i + 1 >= len(tokens):
        return None
    values[option.dest] = tokens[i + 1]
    return i + 2
