"""Connections made inside a lab host's network namespace: how this machine reaches a port that a
lab host keeps on its own loopback (a VM's VNC server), as ssh would from a login on a real host,
without that port being open anywhere else."""
from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def connect_inside(netns: str, address: str, port: int, timeout_s: float = 10.0) -> socket.socket:
    """A TCP connection to address:port made from inside the named namespace (/run/netns/NAME).
    setns moves only the calling thread, so a thread of its own enters the namespace, connects and
    ends; the socket keeps the namespace it was made in. Raises OSError as a connect would."""
    made: dict = {}

    def connect() -> None:
        try:
            with open(f"/run/netns/{netns}", "rb") as namespace:
                if _libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
                    number = ctypes.get_errno()
                    raise OSError(number, os.strerror(number))
            made["socket"] = socket.create_connection((address, port), timeout=timeout_s)
        except OSError as err:
            made["error"] = err

    worker = threading.Thread(target=connect, name=f"connect in {netns}")
    worker.start()
    worker.join()
    if "error" in made:
        raise made["error"]
    made["socket"].settimeout(None)
    return made["socket"]
