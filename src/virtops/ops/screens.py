"""A VM's screen: as a PNG, through libvirt's screenshot stream (virDomainScreenshot), which
travels over the host's own connection, so it works over qemu+ssh:// and qemu+tcp:// as on a local
host; and live, as a socket to its VNC display (open_display) for the web console's noVNC.

QEMU sends a PNG (7.2 and later) or a PPM (P6); this module reads either and writes a PNG itself
(zlib and a few chunks: no imaging library), and can shrink it for thumbnails. Parsing is bounded: a picture larger than MAX_PIXELS
is refused rather than read."""
from __future__ import annotations

import re
import select
import socket
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import libvirt

from virtops.base.errors import HostUnreachable, InvalidInput, VirtopsError, command, from_libvirt, term
from virtops.daemon.connection import loopback_connection, on_this_machine
from virtops.daemon.lookups import domain as require_domain
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.domain import DomainXml

if TYPE_CHECKING:
    from virtops.host import Host

MAX_PIXELS = 8192 * 8192
MAX_BYTES = MAX_PIXELS * 3 + 64
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Picture:
    """RGB pixels, 8 bits a channel, rows top to bottom."""
    width: int
    height: int
    rgb: bytes

    def png(self) -> bytes:
        raw = b"".join(b"\0" + self.rgb[row * self.width * 3:(row + 1) * self.width * 3] for row in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")

    def shrunk(self, width: int) -> "Picture":
        """At most `width` pixels wide, by keeping every n-th pixel and row (a thumbnail)."""
        step = max(1, -(-self.width // max(1, width)))
        if step == 1:
            return self
        rows = []
        for row in range(0, self.height, step):
            line = self.rgb[row * self.width * 3:(row + 1) * self.width * 3]
            rows.append(b"".join(line[x * 3:x * 3 + 3] for x in range(0, self.width, step)))
        return Picture(len(range(0, self.width, step)), len(rows), b"".join(rows))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def parse_ppm(data: bytes) -> Picture:
    """A binary PPM (P6, maxval 255, as QEMU writes it)."""
    fields, at = [], 2
    if not data.startswith(b"P6"):
        raise ValueError("not a binary PPM (P6) picture")
    while len(fields) < 3:
        while at < len(data) and data[at:at + 1].isspace():
            at += 1
        if data[at:at + 1] == b"#":
            at = data.index(b"\n", at) + 1
            continue
        start = at
        while at < len(data) and data[at:at + 1].isdigit():
            at += 1
        if start == at or at - start > 9:
            raise ValueError("a PPM header field is not a number")
        fields.append(int(data[start:at]))
    width, height, maxval = fields
    if maxval != 255 or not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"a PPM of {width}x{height} with maxval {maxval} is not one virtops reads")
    pixels = data[at + 1:at + 1 + width * height * 3]
    if len(pixels) != width * height * 3:
        raise ValueError("the PPM picture is cut short")
    return Picture(width, height, pixels)


def parse_png(data: bytes) -> Picture:
    """An 8-bit RGB or RGBA PNG without interlace, as QEMU writes it (QEMU 7.2 and later send PNG)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG picture")
    at, header, idat = 8, None, []
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("the PNG has no header")
    width, height, depth, color, _compression, _filter, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace or not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"a PNG of {width}x{height}, depth {depth}, color type {color} is not one virtops reads")
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(idat), (width * channels + 1) * height + 1)
    stride = width * channels
    if len(raw) < (stride + 1) * height:
        raise ValueError("the PNG picture is cut short")
    rows, previous = [], bytearray(stride)
    for y in range(height):
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(raw[y * (stride + 1)], line, previous, channels)
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return Picture(width, height, b"".join(rows))


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    """PNG's five row filters (none, sub, up, average, Paeth), undone in place."""
    if kind == 0:
        return
    if kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + previous[i]) & 0xFF
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
        elif kind == 4:
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        else:
            raise ValueError(f"PNG row filter {kind} is not one of 0-4")


READERS = {"image/png": parse_png, "image/x-portable-pixmap": parse_ppm, "image/x-portable-anymap": parse_ppm}


def running_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
    dom = require_domain(conn, name)
    if not dom.isActive():
        raise InvalidInput("vm", f"VM {name} is not running: only a running VM has a screen; "
                                 f"start it{command(f'vm start {name}', wrap=' with {}', elsewhere=' first')}.")
    return dom


def capture(host: Host, name: str, screen: int = 0) -> Picture:
    """The current picture of a running VM's screen `screen` (0: the first)."""
    conn = host.conn
    dom = running_domain(conn, name)
    stream = conn.newStream(0)
    try:
        mime = dom.screenshot(stream, screen, 0)
        data = _receive(stream)
        stream.finish()
    except VirtopsError:
        _abort(stream)
        raise
    except libvirt.libvirtError as err:
        _abort(stream)
        if "no graphics" in (err.get_error_message() or "").lower() or err.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
            raise InvalidInput("vm", f"VM {name} has no screen (no graphics device); "
                                     f"create it with {command('vm create', term('graphics', 'vnc'))}.") from None
        raise from_libvirt(err, f"taking a screenshot of VM {name}") from err
    read = READERS.get(mime)
    if read is None:
        raise VirtopsError(f"The screenshot of VM {name} came as {mime}, which virtops does not read (PNG or PPM).")
    try:
        return read(data)
    except ValueError as err:
        raise VirtopsError(f"The screenshot of VM {name} cannot be read: {err}.") from None


def _receive(stream: libvirt.virStream) -> bytes:
    parts, size = [], 0
    while True:
        part = stream.recv(CHUNK)
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > MAX_BYTES:
            raise VirtopsError(f"The screenshot is larger than {MAX_BYTES} bytes; virtops does not read it.")
        parts.append(part)


def _abort(stream: libvirt.virStream) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass


# -- the live display ------------------------------------------------------------------------------
SSH_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")  # a name, an IPv4 or IPv6 address: never an option
SSH_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$")
TUNNEL_GREETING_S = 30  # a VNC server greets at once; a tunnel still silent then is left to its reader


class Display:
    """A connected stream to a VM's VNC server: `sock` carries RFB both ways. Closing it ends
    the tunnel process, if there is one."""

    def __init__(self, sock: socket.socket, tunnel: subprocess.Popen | None = None):
        self.sock, self.tunnel = sock, tunnel

    def close(self) -> None:
        self.sock.close()
        if self.tunnel is not None and self.tunnel.poll() is None:
            self.tunnel.terminate()
            try:
                self.tunnel.wait(5)
            except subprocess.TimeoutExpired:
                self.tunnel.kill()
                self.tunnel.wait()


def vnc_port(dom: libvirt.virDomain) -> int | None:
    """The port of a running VM's VNC server (on the host's loopback, as virtops defines it)."""
    for graphics in DomainXml(X.parse(dom.XMLDesc(0))).graphics:
        if graphics.type == "vnc" and graphics.port and graphics.port > 0:
            return graphics.port
    return None


def open_display(host: Host, name: str) -> Display:
    """A stream to the VNC display of a running VM. On a daemon of this machine, libvirt hands over
    a connected socket (openGraphicsFD, which passes a file descriptor over the daemon's unix socket):
    no port is opened at all. On a host reached over qemu+ssh://, a tunnel through ssh to the VNC
    server on the host's loopback (`ssh -W`, no shell, the URI's own user and port). A lab host
    reached over its qemu+tcp:// remote URI: a connection made inside its network namespace, where
    the VNC server listens (daemon/connection.loopback_connection). Over other transports there is
    no way in that does not open the VNC port beyond the host: refused."""
    conn = host.conn
    dom = running_domain(conn, name)
    port = vnc_port(dom)
    if port is None:
        raise InvalidInput("vm", f"VM {name} has no VNC display; create it with {command('vm create', term('graphics', 'vnc'))}.")
    if on_this_machine(host.uri):
        try:
            fd = dom.openGraphicsFD(0, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
        except libvirt.libvirtError as err:
            raise from_libvirt(err, f"opening the display of VM {name}") from err
        return Display(socket.socket(fileno=fd))
    parts = urlsplit(host.uri)
    if parts.scheme.endswith("+ssh"):
        return ssh_tunnel(parts, port, name)
    inside = loopback_connection(host.uri, port)  # a lab host: made inside its namespace
    if inside is not None:
        return Display(inside)
    raise InvalidInput("vm", f"the display of VM {name} listens on its host's loopback only, and {parts.scheme}:// "
                             f"carries no tunnel to it; reach the host over qemu+ssh:// for its screen "
                             f"(`vm screenshot` works over any connection).")


def ssh_tunnel(parts, port: int, name: str) -> Display:
    """The tunnel, once the VNC server's first bytes came through it: an ssh that cannot log in or
    whose forward the host refuses ends at once, and its last words make the error sentence
    (instead of a display that closes without a reason)."""
    argv = ssh_tunnel_argv(parts, port)
    ours, theirs = socket.socketpair()
    errors = tempfile.TemporaryFile()  # a file, not a pipe: ssh never blocks on what nobody reads
    try:
        tunnel = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=errors)
    except OSError as err:
        ours.close()
        errors.close()
        raise VirtopsError(f"ssh cannot be run for the display's tunnel ({err.strerror}).") from None
    finally:
        theirs.close()
    display = Display(ours, tunnel)
    readable, _, _ = select.select([ours], [], [], TUNNEL_GREETING_S)
    if readable and not ours.recv(1, socket.MSG_PEEK):
        display.close()
        errors.seek(0)
        said = "; ".join(line.strip().rstrip(".") for line in errors.read().decode(errors="replace").splitlines()
                         if line.strip())
        errors.close()
        raise HostUnreachable(f"the ssh tunnel to the display of VM {name} on {parts.hostname} ended: "
                              f"{said or 'ssh exited ' + str(tunnel.returncode)}.")
    errors.close()
    return display


def ssh_tunnel_argv(parts, port: int) -> list[str]:
    """ssh as libvirt's own qemu+ssh:// transport runs it for the URI (its user, port, `keyfile=`
    and `no_verify=1`), forwarding stdin and stdout to port `port` on the host's loopback:
    no shell, no terminal, never a password prompt (BatchMode)."""
    host, user = parts.hostname or "", parts.username
    if not SSH_HOST.match(host) or (user and not SSH_USER.match(user)):
        raise InvalidInput("uri", f"{host!r} is not a host name ssh is given by virtops.")
    query = parse_qs(parts.query)
    argv = ["ssh", "-o", "BatchMode=yes", "-W", f"127.0.0.1:{port}"]
    if parts.port:
        argv += ["-p", str(parts.port)]
    if query.get("keyfile", [""])[-1]:
        argv += ["-i", query["keyfile"][-1]]  # one argument of its own: a path, never an option
    if query.get("no_verify", ["0"])[-1] not in ("", "0"):
        argv += ["-o", "StrictHostKeyChecking=no"]  # what libvirt's transport does with no_verify=1
    return argv + ["--", f"{user}@{host}" if user else host]
