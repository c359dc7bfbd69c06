"""The `virtops` command line: a thin face over the core. Imports are lazy to keep start-up light."""
from __future__ import annotations

import sys

import click

from virtops.cli.common import Context, run_main
from virtops.cli.aliases import VIRSH_ALIASES
from virtops.cli.groups import LazyGroup


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             aliases=VIRSH_ALIASES,
             lazy_subcommands={
                 "lab": "virtops.cli.lab:lab",
                 "host": "virtops.cli.host:host",
                 "pool": "virtops.cli.pool:pool",
                 "vol": "virtops.cli.vol:vol",
                 "net": "virtops.cli.net:net",
                 "vm": "virtops.cli.vm:vm",
                 "demo": "virtops.cli.demo:demo",
                 "backup": "virtops.cli.backup:backup",
                 "plan": "virtops.cli.spec:plan",
                 "apply": "virtops.cli.spec:apply",
                 "export": "virtops.cli.spec:export",
                 "serve": "virtops.cli.serve:serve",
             })
@click.option("-c", "--connect", "uri", metavar="URI", help="libvirt URI, or lab:NAME (default: $LIBVIRT_DEFAULT_URI, then qemu:///system).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="virtops")
@click.pass_context
def cli(ctx: click.Context, uri: str | None, debug: bool) -> None:
    """Manage KVM hosts through libvirt: pools, volumes, networks, VM devices, backups, specs."""
    ctx.obj = Context(uri=uri, debug=debug)


def main() -> None:
    sys.exit(run_main(cli))
