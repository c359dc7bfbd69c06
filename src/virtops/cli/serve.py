"""`virtops serve`: the web console and its REST API."""
from __future__ import annotations

import click

from virtops.cli.common import pass_context


@click.command()
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDRESS:PORT",
              help="Where to listen; only this machine by default.")
@click.option("--password-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The login password on the file's first line (default: a random one, printed once).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), metavar="PEM", help="Serve HTTPS with this certificate...")
@click.option("--tls-key", type=click.Path(dir_okay=False), metavar="PEM", help="...and this private key.")
@click.option("--session-idle", type=click.IntRange(min=1), default=3600, show_default=True, metavar="SECONDS",
              help="A session without a request for this long ends.")
@click.option("--session-max", type=click.IntRange(min=1), default=12 * 3600, show_default=True, metavar="SECONDS",
              help="A session ends this long after its login, however busy.")
@click.option("--login-lockout", type=click.IntRange(min=1), default=60, show_default=True, metavar="SECONDS",
              help="After too many failed logins, a client (or everyone) waits this long.")
@pass_context
def serve(ctx, listen: str, password_file: str | None, tls_cert: str | None, tls_key: str | None,
          session_idle: int, session_max: int, login_lockout: int) -> None:
    """The web console: pools, volumes, networks and VMs in a browser, live from libvirt's events.
    With -H SELECTOR before it, one console for every selected host (/fleet, /hosts/NAME/...)."""
    import uvicorn

    from virtops.base.errors import InvalidInput
    from virtops.web.app import create_app
    from virtops.web.auth import LoginThrottle, Password, Sessions, read_password

    address, _, port = listen.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput("--listen", f"{listen!r} is not ADDRESS:PORT; give one such as 127.0.0.1:8080.")
    if bool(tls_cert) != bool(tls_key):
        raise InvalidInput("--tls-key" if tls_cert else "--tls-cert", "HTTPS needs both --tls-cert and --tls-key.")
    if tls_cert:
        _check_tls(tls_cert, tls_key)
    _check_free(address.strip("[]"), int(port), listen)
    password, generated = read_password(password_file)
    host = _fleet(ctx) if ctx.hosts else ctx.host()
    if not ctx.hosts:
        host.conn  # connect now: a missing daemon is one sentence, not a server that fails to start
    app = create_app(host, Password(password, password_file), secure_cookies=bool(tls_cert),
                     sessions=Sessions(idle_s=session_idle, max_s=session_max), throttle=LoginThrottle(lockout_s=login_lockout))
    scheme = "https" if tls_cert else "http"
    if generated:
        click.echo(f"login password (this run only): {password}", err=True)
    if not tls_cert and address.strip("[]") not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"warning: {listen} is reachable from other machines and the password would cross the "
                   "network unencrypted; give --tls-cert and --tls-key.", err=True)
    served = ", ".join(host.hosts) if ctx.hosts else host.uri
    click.echo(f"virtops web console for {served} on {scheme}://{listen}/ (Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=address.strip("[]"), port=int(port), log_level="warning",
                ssl_certfile=tls_cert, ssl_keyfile=tls_key)


serve.fleet = True  # -H SELECTOR serves the selected hosts (cli/root.py lets it through)


def _fleet(ctx):
    """The selected hosts, each opened lazily: one that is away at start is served greyed out
    until it answers (web/fleet.py), not refused."""
    from virtops.web.fleet import Fleet

    return Fleet.open(ctx.fleet())


def _check_tls(cert: str, key: str) -> None:
    import ssl

    from virtops.base.errors import InvalidInput

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise InvalidInput("--tls-cert", f"cannot use {cert} with {key} ({err.strerror or err}); "
                                         "give a PEM certificate and its private key.") from err


def _check_free(address: str, port: int, listen: str) -> None:
    """Refuse in one sentence what uvicorn would refuse in a log record after starting."""
    import socket

    from virtops.base.errors import InvalidInput

    try:
        info = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(info[4])
    except OSError as err:
        raise InvalidInput("--listen", f"cannot listen on {listen} ({err.strerror or err}); "
                                       "choose a free port on an address of this machine.") from err
