"""Helpers shared by tests: the XML of every object on a host, to prove a refusal changed nothing."""
from __future__ import annotations

import libvirt


def host_state(conn: libvirt.virConnect) -> dict[str, str]:
    """XML (and active/autostart flags) of every network, pool, volume and domain on the host."""
    state: dict[str, str] = {}
    for net in conn.listAllNetworks():
        state[f"net/{net.name()}"] = f"{net.isActive()}{net.autostart()}" + net.XMLDesc(0)
    for pool in conn.listAllStoragePools():
        state[f"pool/{pool.name()}"] = f"{pool.isActive()}{pool.autostart()}" + pool.XMLDesc(0)
        if pool.isActive():
            pool.refresh(0)
            for vol in pool.listAllVolumes():
                state[f"vol/{pool.name()}/{vol.name()}"] = vol.XMLDesc(0)
    for dom in conn.listAllDomains():
        state[f"dom/{dom.name()}"] = f"{dom.isActive()}" + dom.XMLDesc(0)
    return state


def run_cli(*args: str, uri: str | None = None, input: str | None = None):
    """Run the real `virtops` command line in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "virtops"]
    if uri:
        argv += ["-c", uri]
    return subprocess.run([*argv, *args], capture_output=True, text=True, input=input, timeout=600)
