"""Helpers shared by tests: the XML of every object on a host, to prove a refusal changed nothing."""
from __future__ import annotations

import libvirt


def host_state(conn: libvirt.virConnect) -> dict[str, str]:
    """XML (and active/autostart flags) of every network, pool, volume and domain on the host."""
    state: dict[str, str] = {}
    for net in conn.listAllNetworks():
        state[f"net/{net.name()}"] = f"{net.isActive()}{net.autostart()}" + net.XMLDesc(0)
    for pool in conn.listAllStoragePools():
        state[f"pool/{pool.name()}"] = f"{pool.isActive()}{pool.autostart()}" + _without_usage(pool.XMLDesc(0))
        if pool.isActive():
            pool.refresh(0)
            for vol in pool.listAllVolumes():
                state[f"vol/{pool.name()}/{vol.name()}"] = vol.XMLDesc(0)
    for dom in conn.listAllDomains():
        state[f"dom/{dom.name()}"] = f"{dom.isActive()}" + dom.XMLDesc(0)
    return state


def _without_usage(pool_xml: str) -> str:
    """A pool's capacity/allocation/available follow the filesystem, which other processes
    write to; they are not configuration."""
    from virtops import xml as X

    root = X.parse(pool_xml)
    for tag in ("capacity", "allocation", "available"):
        for node in root.findall(tag):
            root.remove(node)
    return X.to_string(root)


def run_cli(*args: str, uri: str | None = None, input: str | None = None):
    """Run the real `virtops` command line in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "virtops"]
    if uri:
        argv += ["-c", uri]
    return subprocess.run([*argv, *args], capture_output=True, text=True, input=input, timeout=600)
