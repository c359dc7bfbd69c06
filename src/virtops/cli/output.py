"""What every command shares that needs no click: the host it talks to, output as a table or JSON,
errors as one sentence each, exit codes. The listing and info commands run on this alone
(cli/quick.py), so that they start without importing click; cli/common.py adds click's parts."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable


def echo(text: str = "", err: bool = False) -> None:
    """One line on stdout (stderr with err), flushed: what click.echo does for plain text."""
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{text}\n")
    stream.flush()


class Context:
    """What the root's options say (a plain class: dataclasses imports inspect, 5 ms of a listing's start-up)."""

    def __init__(self, uri: str | None = None, hosts: str | None = None, debug: bool = False):
        self.uri = uri
        self.hosts = hosts  # -H SELECTOR: a fleet command asks the hosts it selects (virtops.fleet)
        self.debug = debug
        self.event_loop = True  # libvirt's event loop (keepalive); see Connection.event_loop
        self._host: Any = None

    def __repr__(self) -> str:
        return f"Context(uri={self.uri!r}, hosts={self.hosts!r}, debug={self.debug!r})"

    def host(self):
        """The host this command talks to; announced on stderr when it is not the obvious one."""
        if self._host is None:
            from virtops.host import Host

            self._host = Host(self.uri)
            self._host.connection.event_loop = self.event_loop
            notice = _host_notice(self.uri, self._host.uri)
            if notice:
                echo(notice, err=True)
        return self._host

    def fleet(self) -> list:
        """The hosts -H selects (every host `host list` shows when -H is not given)."""
        from virtops.fleet.select import select

        return select(self.hosts or "all")


def _host_notice(given: str | None, resolved: str) -> str | None:
    """-c names the host plainly; a URI from the environment, or libvirt's in-process test driver
    (whose state dies with the command), is said out loud."""
    if resolved.startswith("test:"):
        return f"host: {resolved} (libvirt's test driver: nothing is kept after this command)"
    if not given and os.environ.get("LIBVIRT_DEFAULT_URI"):
        return f"host: {resolved} (from $LIBVIRT_DEFAULT_URI)"
    return None


# -- ending a command -----------------------------------------------------------------------------
class Failed(Exception):
    """Ends a command with exit code 1 after its output, its errors said already (a fleet command
    whose other hosts answered). click.exceptions.Exit would not do: without standalone mode,
    click returns its code from main() instead of raising it."""


def run_guarded(command: Callable[[], int]) -> int:
    """Run a command; its exit code, or 1 (Failed), 130 (interrupted), or the code of the core's
    refusal after its sentence(s) on stderr. Anything else is a bug: its traceback is shown."""
    try:
        return command()
    except Failed:
        return 1
    except KeyboardInterrupt:
        echo("Interrupted.", err=True)
        return 130
    except Exception as err:
        # Only the core raises VirtopsError, so it is one only if the core was imported: `--help`
        # and usage errors need not import it (nor libvirt, which it imports).
        errors = sys.modules.get("virtops.base.errors")
        if errors is not None and not isinstance(err, errors.VirtopsError) and _lost_daemon(err):
            err = errors.VirtopsError(f"{errors.one_sentence(err.get_error_message() or str(err)).rstrip('.')}: "
                                      "the libvirt daemon went away in the middle of this command; "
                                      "run the same command again once it answers, to finish the job.")
        if errors is None or not isinstance(err, errors.VirtopsError) or _debug_requested():
            raise
        for one in getattr(err, "errors", None) or [err]:  # several refusals: one line each
            echo(f"error: {in_cli_terms(one)}", err=True)
        return err.exit_code


def _lost_daemon(err: Exception) -> bool:
    """A libvirt error that no part of the core turned into a sentence, because the daemon went
    away in a call nobody expects to fail (a restart midway): said in one sentence all the same."""
    binding = sys.modules.get("virtops.base.binding")  # libvirt.py, or a listing's light_libvirt.py
    libvirt = binding.chosen() if binding else sys.modules.get("libvirt")
    return (libvirt is not None and isinstance(err, libvirt.libvirtError)
            and err.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE))


def _debug_requested() -> bool:
    return "--debug" in sys.argv[1:]


# The core names the terms of a request by their fields (format, start, disks); the command line
# words them as options. The options of the command being run come first (cli/common.pass_context
# notes them: its --format of source_format, its --no-start); then the fields whose option is
# named otherwise on every command (also the options that place a refusal in a request: ("disks",
# 1) is --disk #2); then --FIELD.
FLAG_OF_FIELD = {"disks": "--disk", "new_disks": "--new-disk", "nics": "--network", "selector": "-H"}
# name -> (flag, its negative flag or None), by parameter name and by the flag's own name.
COMMAND_OPTIONS: dict[str, tuple[str, str | None]] = {}
# A command whose items of one part come from several options (a VM's NICs from --network, --bridge
# and --direct) names each item here, in the request's order: ["--network #1", "--bridge #1"].
ITEM_LABELS: dict[str, list[str]] = {}


def note_command_options(options: list[tuple[str, list[str], list[str]]]) -> None:
    """The running command's options: (parameter name, flags, negative flags) each."""
    COMMAND_OPTIONS.clear()
    for name, flags, negatives in options:
        long = next((flag for flag in flags if flag.startswith("--")), None)
        if long is None:
            continue
        negative = next((flag for flag in negatives if flag.startswith("--")), None)
        COMMAND_OPTIONS.setdefault(long[2:].replace("-", "_"), (long, negative))
        COMMAND_OPTIONS.setdefault(name, (long, negative))


def _command_line_wording():
    errors = sys.modules["virtops.base.errors"]

    class CliWording(errors.CommandLineWording):
        def flag(self, field: str, on: bool = True) -> str:
            flag, negative = COMMAND_OPTIONS.get(field) or (FLAG_OF_FIELD.get(field), None)
            if not on:
                if negative is None and f"no_{field}" in COMMAND_OPTIONS:
                    negative = COMMAND_OPTIONS[f"no_{field}"][0]
                return negative or super().flag(field, on=False)
            return flag or super().flag(field)

        def field(self, name: str) -> str:
            """A refused field that is an option of this command is named as the option; others (an
            argument such as the pool's NAME) by the core's name."""
            return (COMMAND_OPTIONS.get(name) or (FLAG_OF_FIELD.get(name, name),))[0]

    return CliWording()


def in_cli_words(data: Any) -> Any:
    """A text of the core that is no error (a plan's note or summary, a restore step's reason), or
    data holding such texts (a plan as JSON), with its terms as options."""
    if isinstance(data, str):
        return _command_line_wording().words(data) if "virtops.base.errors" in sys.modules else data
    if isinstance(data, dict):
        return {key: in_cli_words(value) for key, value in data.items()}
    if isinstance(data, list):
        return [in_cli_words(value) for value in data]
    return data


def in_cli_terms(err) -> str:
    """The core's sentence in the command line's terms: its fields and terms as options, a refusal
    about a part of the request (a VM's second disk) begun with that part's option (--disk #2)."""
    wording = _command_line_wording()
    location = getattr(err, "location", ())
    if len(location) < 2 or location[0] not in FLAG_OF_FIELD or not isinstance(location[1], int):
        return err.worded(wording)
    labels = ITEM_LABELS.get(location[0], [])
    label = labels[location[1]] if location[1] < len(labels) else f"{FLAG_OF_FIELD[location[0]]} #{location[1] + 1}"
    return f"{label}: {err.worded(wording, with_field=False)}"


# -- output ---------------------------------------------------------------------------------------
def warn_unreadable(kind: str, rows: list[dict], where: str = "") -> None:
    """A listed object whose XML could not be read is a row of its own; stderr says why."""
    for row in rows:
        if row.get("unreadable"):
            echo(f"warning: {where}{kind} {row['name']} cannot be read: {row['unreadable']}", err=True)


def emit_json(data: Any) -> None:
    import json  # only --json needs it: 1 ms of every other listing's start-up

    echo(json.dumps(data, indent=2, default=str))


def emit_table(rows: Iterable[dict], columns: list[tuple[str, str]], title: str | None = None) -> None:
    """columns: (key, heading). Rich renders it when stdout is a terminal; plain aligned text otherwise."""
    if not sys.stdout.isatty():
        _emit_plain_table(list(rows), columns, title)  # rich takes a second for thousands of rows
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for _key, heading in columns:
        table.add_column(heading)
    for row in rows:
        table.add_row(*[_cell(row.get(key)) for key, _ in columns])
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _emit_plain_table(rows: list[dict], columns: list[tuple[str, str]], title: str | None) -> None:
    echo("\n".join(([title] if title else []) + table_lines(rows, columns)))


def table_lines(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """The same layout rich prints without a box: columns two spaces apart, cells padded."""
    cells = [[heading for _key, heading in columns]] + [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def emit_fields(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs) + 1
    echo("\n".join(f"{key + ':':<{width}} {_cell(value)}" for key, value in pairs))


def emit_fleet_rows(rows: list[dict], columns: list[tuple[str, str]], as_json: bool, failures: list = ()) -> None:
    """A fleet's rows as one table with the host first (JSON: each row carries "host"); then each host
    that did not answer, in one sentence on stderr, and exit code 1 when there was one."""
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, [("host", "Host"), *columns])
    fleet_failures(failures)


def answer_error(answer) -> str | None:
    """A fleet's answer's error in the command line's terms (the core's refusal, when it was one)."""
    failure = getattr(answer, "failure", None)
    return in_cli_terms(failure) if failure is not None else answer.error


def fleet_failures(failures: list) -> None:
    """One line per host that failed (a fleet Answer: .host.name, .error); exit code 1 after the output."""
    for answer in failures:
        echo(f"error: host {answer.host.name}: {answer_error(answer)}", err=True)
    if failures:
        raise Failed()
