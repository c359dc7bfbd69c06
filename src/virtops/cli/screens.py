"""`virtops vm screenshot`: a VM's screen as a PNG file (ops/screens.py), over any connection."""
from __future__ import annotations

import os
import sys

import click

from virtops.cli.common import complete, pass_context


@click.command("screenshot")
@click.argument("name", shell_complete=complete("vm"))
@click.option("-o", "--output", "output", required=True, metavar="FILE.png", help="Where to write the PNG ('-': stdout).")
@click.option("--screen", type=click.IntRange(0, 15), default=0, show_default=True, help="Which screen of the VM.")
@click.option("--width", type=click.IntRange(16, 8192), default=None, help="Shrink to at most this many pixels wide.")
@pass_context
def vm_screenshot(ctx, name: str, output: str, screen: int, width: int | None) -> None:
    """The screen of a running VM (one with --graphics vnc) as a PNG, through libvirt's screenshot stream."""
    from virtops.ops.screens import capture

    picture = capture(ctx.host(), name, screen)
    if width:
        picture = picture.shrunk(width)
    png = picture.png()
    if output == "-":
        sys.stdout.buffer.write(png)
        return
    partial = f"{output}.partial"
    with open(partial, "wb") as file:
        file.write(png)
    os.replace(partial, output)
    click.echo(f"Screenshot of VM {name} ({picture.width}x{picture.height}) written to {output}.")
