"""The `virtops` command line: a thin face over the core. A listing or info command runs through
cli/quick.py without importing click; every other command line goes to click (cli/root.py)."""
from __future__ import annotations

import sys


def main() -> None:
    sys.exit(run(sys.argv[1:], own_process=True))


def run(argv: list[str], own_process: bool = False) -> int:
    """The exit code of the command line `argv` (without the program's name), once it has run.
    `own_process`: the process runs this command alone (the `virtops` command), so a listing on
    one host may call libvirt through the light binding (base/binding.py)."""
    from virtops.cli.quick import run_quick

    code = run_quick(argv, light_binding=own_process)
    if code is None:
        from virtops.cli.common import run_main
        from virtops.cli.root import cli

        code = run_main(cli, argv)
    return code


def __getattr__(name: str):
    if name == "cli":  # the click group, for `from virtops.cli import cli`
        from virtops.cli.root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
