"""`virtops serve`: the web console and its REST API."""
from __future__ import annotations

import click

from .common import pass_context


@click.command()
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDRESS:PORT",
              help="Where to listen; only this machine by default.")
@click.option("--password-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The login password on the file's first line (default: a random one, printed once).")
@pass_context
def serve(ctx, listen: str, password_file: str | None) -> None:
    """The web console: pools, volumes, networks and VMs in a browser, live from libvirt's events."""
    import uvicorn

    from ..errors import InvalidInput
    from ..web.app import create_app
    from ..web.auth import read_password

    address, _, port = listen.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput("--listen", f"{listen!r} is not ADDRESS:PORT; give one such as 127.0.0.1:8080.")
    password, generated = read_password(password_file)
    host = ctx.host()
    host.conn  # connect now: a missing daemon is one sentence, not a server that fails to start
    app = create_app(host, password)
    if generated:
        click.echo(f"login password (this run only): {password}", err=True)
    click.echo(f"virtops web console for {host.uri} on http://{listen}/ (Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=address.strip("[]"), port=int(port), log_level="warning")
