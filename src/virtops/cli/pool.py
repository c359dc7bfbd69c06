"""`virtops pool`: storage pools. A thin face: every rule lives in virtops.ops.pool."""
from __future__ import annotations

import click

from virtops.xmlmodels.values import POOL_TYPES
from virtops.cli.common import (ModelCommand, complete, emit_json, emit_table, given_fields, json_option, listing_command,
                                pass_context)
from virtops.cli.listings import BY_PATH
from virtops.cli.output import in_cli_words

def _pool_spec_model() -> type:
    from virtops.ops.pool import PoolSpec

    return PoolSpec


# Create and define-as (virsh pool-define-as) take PoolSpec's fields as options.
POOL_OPTIONS = dict(cls=ModelCommand, model=_pool_spec_model, leave_out=("name",),
                    extra={"type": {"type": click.Choice(POOL_TYPES)}})


def _spec(name: str, fields: dict):
    from virtops.ops.pool import PoolSpec

    return PoolSpec(name=name, **given_fields(PoolSpec, fields))


def _warn(warnings) -> None:
    for warning in warnings:
        click.echo(f"warning: {in_cli_words(warning)}", err=True)


@click.group()
def pool() -> None:
    """Storage pools: directories, NFS exports, file systems, LVM volume groups, disks."""


for _listing in ("list", "info"):
    pool.add_command(listing_command(BY_PATH["pool", _listing]))


@pool.command("create", **POOL_OPTIONS)
@click.argument("name")
@click.option("--no-start", is_flag=True, help="Define and build only.")
@click.option("--no-autostart", is_flag=True, help="Do not start the pool with the host.")
@click.option("--build", "build_device", is_flag=True,
              help="logical, disk: write the volume group (vgcreate) or a new partition table on the empty device.")
@json_option
@pass_context
def pool_create(ctx, name, no_start, no_autostart, build_device, as_json, **fields) -> None:
    """Define, build, start and autostart a pool in one step; undone entirely if a step fails.

    A logical or disk pool takes what its device holds; --build makes it there first."""
    result = ctx.host().pools.create(_spec(name, fields), start=not no_start, autostart=not no_autostart,
                                     build_device=build_device)
    _warn(result.warnings)
    if as_json:
        emit_json(in_cli_words(result.model_dump()))
        return
    click.echo(f"Pool {name} created: {', '.join(result.steps)}.")


@pool.command("define-as", **POOL_OPTIONS)
@click.argument("name")
@json_option
@pass_context
def pool_define_as(ctx, name, as_json, **fields) -> None:
    """Define a pool without building or starting it (virsh pool-define-as)."""
    info = ctx.host().pools.define(_spec(name, fields))
    if as_json:
        emit_json(info.model_dump())
        return
    click.echo(f"Pool {name} defined.")


def _pool_permissions_model() -> type:
    from virtops.ops.pool import PoolPermissions

    return PoolPermissions


@pool.command("set", cls=ModelCommand, model=_pool_permissions_model)
@click.argument("name", shell_complete=complete("pool"))
@json_option
@pass_context
def pool_set(ctx, name, mode, owner, group, as_json) -> None:
    """Change a dir pool's permissions and apply them to its directory.

    libvirt applies them by building the pool, which it does only when the pool is stopped: a
    running pool stops for a moment and starts again (running VMs keep their open disks)."""
    result = ctx.host().pools.set_permissions(name, mode=mode, owner=owner, group=group)
    _warn(result.warnings)
    if as_json:
        emit_json(in_cli_words(result.model_dump()))
        return
    info = result.pool
    click.echo(f"Pool {name}: mode {info.mode}, owner {info.owner}, group {info.group}; {', '.join(result.steps)}.")


def _simple(command_name: str, method: str, done: str, help_text: str):
    @pool.command(command_name, help=help_text)
    @click.argument("name", shell_complete=complete("pool"))
    @pass_context
    def command(ctx, name) -> None:
        getattr(ctx.host().pools, method)(name)
        click.echo(f"Pool {name} {done}.")

    return command


_simple("start", "start", "started", "Start (activate) a pool; for netfs and fs this mounts it.")
_simple("refresh", "refresh", "refreshed", "Rescan the pool's volumes.")
_simple("build", "build", "built", "Create the pool's directory with its permissions (virsh pool-build).")
_simple("undefine", "undefine", "undefined", "Forget a pool's definition; its data stays (virsh pool-undefine).")


@pool.command("stop")
@click.argument("name", shell_complete=complete("pool"))
@click.option("--force", is_flag=True, help="Stop even while running VMs have disks in it.")
@pass_context
def pool_stop(ctx, name, force) -> None:
    """Stop (deactivate) a pool; its volumes stay (virsh pool-destroy)."""
    ctx.host().pools.stop(name, force=force)
    click.echo(f"Pool {name} stopped.")


@pool.command("autostart")
@click.argument("name", shell_complete=complete("pool"))
@click.option("--disable", is_flag=True, help="Do not start the pool with the host.")
@pass_context
def pool_autostart(ctx, name, disable) -> None:
    """Start the pool with the host (or not, with --disable)."""
    ctx.host().pools.set_autostart(name, not disable)
    click.echo(f"Pool {name} {'will not' if disable else 'will'} start with the host.")


@pool.command("dumpxml")
@click.argument("name", shell_complete=complete("pool"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@click.option("--inactive", is_flag=True, help="The persistent definition rather than the live one.")
@pass_context
def pool_dumpxml(ctx, name, output, inactive) -> None:
    """The pool's XML, as libvirt has it."""
    text = ctx.host().pools.dumpxml(name, inactive=inactive)
    if output:
        with open(output, "w") as out:
            out.write(text)
        click.echo(f"Pool {name} XML written to {output}.", err=True)
    else:
        click.echo(text, nl=False)


@pool.command("delete")
@click.argument("name", shell_complete=complete("pool"))
@click.option("--with-volumes", is_flag=True,
              help="Also delete the volumes in it, then its directory (logical: its volume group; disk: its partition table).")
@click.option("--keep-data", is_flag=True, help="Only stop and undefine; volumes and directory stay.")
@click.option("--force", is_flag=True, help="Delete even while VMs use volumes in it (they are named).")
@pass_context
def pool_delete(ctx, name, with_volumes, keep_data, force) -> None:
    """Stop, remove the directory of and undefine a pool; refused while a VM uses a volume in it."""
    done = ctx.host().pools.delete(name, with_volumes=with_volumes, keep_data=keep_data, force=force)
    click.echo(f"Pool {name}: {', '.join(done)}.")


@pool.command("sources")
@click.argument("pool_type", metavar="TYPE", type=click.Choice(["netfs"]))
@click.option("--host", "source_host", required=True, help="The file server to ask.")
@json_option
@pass_context
def pool_sources(ctx, pool_type, source_host, as_json) -> None:
    """The exports a file server offers (virsh find-storage-pool-sources-as)."""
    found = ctx.host().pools.sources(pool_type, source_host)
    if as_json:
        emit_json([s.model_dump() for s in found])
        return
    emit_table([s.model_dump() for s in found], [("host", "Host"), ("path", "Export"), ("format", "Format")])
