"""The live display of a VM on a remote host: a lab host reached over its qemu+tcp:// remote URI
from the lab's outside namespace, as an operator reaches another machine. Its VNC server listens
on the lab's own loopback; virtops connects to it from inside the lab's namespace (ops/screens.py,
daemon/connection.loopback_connection), and the port is closed from outside. Checked with the
core's display (a whole RFB handshake and a frame of the guest's text console) and with the web
console's WebSocket of a `virtops serve` running in the outside namespace.

The checks run in the outside namespace: this module run as a program there (`python -m`)."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab import test_screens

screen_guest = test_screens.screen_guest  # a running test guest with a screen, on the uplink lab
VM = test_screens.VM
PASSWORD = "remote-screen-password"


def test_display_of_a_remote_lab_host_is_reached_inside_its_namespace(uplink_lab, screen_guest):
    check_display_from_outside(uplink_lab, uplink_lab.remote_uri)


def check_display_from_outside(lab, uri: str) -> None:
    """The display of the screen guest and its web console's WebSocket, from the lab's outside
    namespace over `uri`, and its VNC port closed from there."""
    argv = ["ip", "netns", "exec", lab.outside_netns, sys.executable, "-m", "tests.lab.test_remote_screen", uri, VM]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "LIBVIRT_DEFAULT_URI": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["greeting"] == "RFB 003.008\n"
    width, height = seen["size"]
    assert width >= 640 and height >= 400  # the VGA text mode (720x400) or a graphics mode
    assert 500 < seen["lit"] < width * height // 2  # lines of text on a black screen, unlike a blank frame
    assert seen["port_from_outside"] == "refused"  # no VNC port beyond the host
    # The web console's display, through serve in the outside namespace: the same screen.
    assert seen["websocket"]["greeting"] == "RFB 003.008\n" and seen["websocket"]["size"] == seen["size"]
    assert 500 < seen["websocket"]["lit"] < width * height // 2


# -- run in the outside namespace ------------------------------------------------------------------
def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        part = sock.recv(count - len(data))
        if not part:
            raise EOFError(f"the VNC server closed after {len(data)} of {count} bytes")
        data += part
    return data


def _frame(sock: socket.socket) -> dict:
    """RFB 3.8 without authentication (QEMU's server, reached without a password), then one full
    frame in the raw encoding: its size and how many pixels are not the first pixel's colour."""
    sock.settimeout(30)
    greeting = _exactly(sock, 12)
    sock.sendall(b"RFB 003.008\n")
    kinds = _exactly(sock, _exactly(sock, 1)[0])
    assert 1 in kinds, f"security types {list(kinds)}"
    sock.sendall(b"\x01")
    assert _exactly(sock, 4) == b"\0\0\0\0"
    sock.sendall(b"\x01")  # shared
    width, height = struct.unpack(">HH", _exactly(sock, 4))
    pixel_format = _exactly(sock, 16)
    _exactly(sock, struct.unpack(">I", _exactly(sock, 4))[0])  # the desktop's name
    size = pixel_format[0] // 8
    sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))  # the whole screen, not incremental
    kind, _pad, rects = struct.unpack(">BBH", _exactly(sock, 4))
    assert kind == 0, f"message {kind} instead of a framebuffer update"
    pixels = b""
    for _ in range(rects):
        _x, _y, w, h, encoding = struct.unpack(">HHHHi", _exactly(sock, 12))
        assert encoding == 0, f"encoding {encoding}"
        pixels += _exactly(sock, w * h * size)
    background = pixels[:size]
    lit = sum(1 for i in range(0, len(pixels), size) if pixels[i:i + size] != background)
    return {"greeting": greeting.decode(), "size": [width, height], "lit": lit}


class _WebSocketStream:
    """RFB over the console's WebSocket (binary messages), read and written as _frame does a socket."""

    def __init__(self, websocket):
        self.websocket, self.pending, self.timeout = websocket, b"", 30.0

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout

    def recv(self, count: int) -> bytes:
        if not self.pending:
            self.pending = self.websocket.recv(timeout=self.timeout)
        part, self.pending = self.pending[:count], self.pending[count:]
        return part

    def sendall(self, data: bytes) -> None:
        self.websocket.send(data)


def _websocket_frame(uri: str, name: str) -> dict:
    import httpx
    from websockets.sync.client import connect

    from tests.helpers import serve_process

    with tempfile.TemporaryDirectory() as folder:
        password = Path(folder) / "password"
        password.write_text(PASSWORD + "\n")
        with serve_process(uri, password, env={"VIRTOPS_CACHE": folder}) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                assert client.post("/login", json={"password": PASSWORD}).status_code == 200
                cookie = "; ".join(f"{key}={value}" for key, value in client.cookies.items())
            url = base.replace("http://", "ws://") + f"/api/vms/{name}/vnc"
            with connect(url, additional_headers={"Cookie": cookie, "Origin": base}) as websocket:
                return _frame(_WebSocketStream(websocket))


def _port_from_outside(address: str, port: int) -> str:
    try:
        socket.create_connection((address, port), timeout=5).close()
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        return f"unreachable: {err}"
    return "open"


def main(uri: str, name: str) -> None:
    from urllib.parse import urlsplit

    from virtops.host import Host
    from virtops.ops.screens import open_display, vnc_port

    host = Host(uri)
    try:
        port = vnc_port(host.conn.lookupByName(name))
        display = open_display(host, name)
        try:
            seen = _frame(display.sock)
        finally:
            display.close()
    finally:
        host.close()
    seen["port_from_outside"] = _port_from_outside(urlsplit(uri).hostname, port)
    seen["websocket"] = _websocket_frame(uri, name)
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:3])
