"""Helpers shared by tests: the XML of every object on a host (to prove a refusal changed nothing),
the real CLI in a subprocess, and XML for objects tests define with libvirt directly."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import libvirt

from virtops.daemon.lookups import when_pool_free
from virtops.xmlmodels import doc as X


def host_state(conn: libvirt.virConnect) -> dict[str, str]:
    """XML (and active/autostart flags) of every network, pool, volume and domain on the host."""
    state: dict[str, str] = {}
    for net in conn.listAllNetworks():
        state[f"net/{net.name()}"] = f"{net.isActive()}{net.autostart()}" + net.XMLDesc(0)
    for pool in conn.listAllStoragePools():
        state[f"pool/{pool.name()}"] = f"{pool.isActive()}{pool.autostart()}" + _without_usage(pool.XMLDesc(0))
        if pool.isActive():
            when_pool_free(lambda: pool.refresh(0))  # a volume a killed client asked for may be in the making
            for vol in pool.listAllVolumes():
                state[f"vol/{pool.name()}/{vol.name()}"] = _without_access_times(vol.XMLDesc(0))
    for dom in conn.listAllDomains():
        state[f"dom/{dom.name()}"] = f"{dom.isActive()}" + dom.XMLDesc(0)
    return state


def delete_everything(conn: libvirt.virConnect) -> None:
    """Every domain, network, pool and volume of a lab host, gone (a spec cannot say so: an empty
    spec with --prune is refused as the mistake it usually is)."""
    delete_objects(conn.listAllDomains(), conn.listAllNetworks(), conn.listAllStoragePools())


def delete_objects(domains, networks, pools) -> None:
    """These libvirt domains, networks and pools gone, running or not, pools with their volumes and
    directories: what a test's fixture made, removed in its teardown."""
    for dom in domains:
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefine()
    for net in networks:
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    for pool in pools:
        if pool.isActive():
            for vol in pool.listAllVolumes():
                vol.delete(0)
            pool.destroy()
        pool.delete(0)
        if pool.isPersistent():
            pool.undefine()


def _without_usage(pool_xml: str) -> str:
    """A pool's capacity/allocation/available follow the filesystem, which other processes
    write to; they are not configuration."""
    root = X.parse(pool_xml)
    for tag in ("capacity", "allocation", "available"):
        for node in root.findall(tag):
            root.remove(node)
    return X.to_string(root)


def _without_access_times(vol_xml: str) -> str:
    """A volume's atime and ctime move without any change to it: reading moves atime, and libvirt's
    DAC driver hands a volume to QEMU's user and back (chown, chown) whenever QEMU opens it, even
    for a hot-plug QEMU refuses, which moves ctime. Owner, mode and mtime stay compared."""
    root = X.parse(vol_xml)
    for tag in ("atime", "ctime"):
        for node in root.findall(f"target/timestamps/{tag}"):
            node.getparent().remove(node)
    return X.to_string(root)


def run_cli(*args: str, uri: str | None = None, input: str | None = None):
    """Run the real `virtops` command line in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "virtops"]
    if uri:
        argv += ["-c", uri]
    return subprocess.run([*argv, *args], capture_output=True, text=True, input=input, timeout=600)


# -- XML of objects that tests define with libvirt directly (the rich hosts of backup and spec tests) --
def dir_pool_element(name):
    pool = X.element("pool", type="dir")
    X.sub(pool, "name", name)
    target = X.sub(pool, "target")
    X.sub(target, "path", f"/var/lib/libvirt/{name}")
    return pool


def volume_element(name, capacity, fmt, backing=None, allocation=0):
    vol = X.element("volume")
    X.sub(vol, "name", name)
    X.sub(vol, "capacity", capacity, unit="bytes")
    X.sub(vol, "allocation", allocation, unit="bytes")
    X.sub(X.sub(vol, "target"), "format", type=fmt)
    if backing:
        store = X.sub(vol, "backingStore")
        X.sub(store, "path", backing)
        X.sub(store, "format", type="qcow2")
    return vol


def network_element(name, mode, third):
    net = X.element("network")
    X.sub(net, "name", name)
    if mode:
        X.sub(net, "forward", mode=mode)
    X.sub(net, "bridge", name=f"vbr{third}")
    ip = X.sub(net, "ip", address=f"10.{third}.0.1", netmask="255.255.255.0")
    dhcp = X.sub(ip, "dhcp")
    X.sub(dhcp, "range", start=f"10.{third}.0.128", end=f"10.{third}.0.254")
    X.sub(dhcp, "host", mac=f"52:54:00:00:{third:02x}:01", ip=f"10.{third}.0.10", name="fixed")
    X.sub(dhcp, "host", mac=f"52:54:00:00:{third:02x}:02", ip=f"10.{third}.0.11")
    return net


def cli_ok(uri: str, *args: str) -> str:
    """Run the CLI and require success; returns its standard output."""
    result = run_cli(*args, uri=uri)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def let_qemu_in(uri: str, pool: str) -> None:
    """What the QEMU-access check proposes for the handbook's pool of mode 0700 (root:root), which
    QEMU, running as libvirt-qemu as on a stock host, cannot pass: run, as the operator would,
    `virtops pool set POOL --mode 0711` (see ops/access.py and docs/labs.md)."""
    cli_ok(uri, "pool", "set", pool, "--mode", "0711")


# -- the web console as a real process ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_process(uri: str, password_file: Path, *options: str, port: int | None = None, env: dict | None = None):
    """`virtops serve` as a real process on a loopback port (a free one unless given); yields its
    base URL. The session's shared server (conftest's web_server) and the servers of tests that
    would disturb it (a changed password, a login lockout, short session lifetimes) alike; `env`
    adds to its environment (a cache directory of its own, say). A uri of the form "-H SELECTOR"
    serves a fleet."""
    port = port or free_port()
    target = uri.split(" ", 1) if uri.startswith("-H ") else ["-c", uri]
    server = subprocess.Popen([sys.executable, "-m", "virtops", *target, "serve", "--listen", f"127.0.0.1:{port}",
                               "--password-file", str(password_file), *options],
                              env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"virtops serve did not start: {server.communicate()[0]}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def websocket_close_code(url: str, headers: dict) -> int:
    """The close code a WebSocket of the console answers with before anything else."""
    import pytest
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url, additional_headers=headers) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        return closed.value.rcvd.code


def fresh_lab(name: str, **up):
    """The lab host NAME brought up anew (`up`: Lab.up's options): one a killed run left is taken down first."""
    from virtops.lab.labhost import Lab

    lab = Lab(name)
    if lab.exists():
        lab.down()
    lab.up(**up)
    return lab


@contextlib.contextmanager
def fresh_labs(names: list[str], **up):
    """Lab hosts of these names, each brought up anew (`up`: Lab.up's options), always taken down."""
    from virtops.lab.labhost import Lab

    labs = [Lab(name) for name in names]
    try:
        for lab in labs:
            fresh_lab(lab.name, **up)
        yield labs
    finally:
        for lab in labs:
            lab.down()


def define_small_domain(uri: str, name: str) -> None:
    """A small domain with no disk, defined through libvirt: QEMU starts it (its firmware finds
    nothing to boot), which is all a listing or a start/shutdown/destroy needs."""
    conn = libvirt.open(uri)
    try:
        conn.defineXML(small_domain_xml(name))
    finally:
        conn.close()


def small_domain_xml(name: str, network: str | None = None, mac: str | None = None) -> str:
    """define_small_domain's domain, with a NIC on network (and this MAC) when given."""
    dom = X.element("domain", type="qemu")
    X.sub(dom, "name", name)
    X.sub(dom, "memory", 32, unit="MiB")
    X.sub(X.sub(dom, "os"), "type", "hvm", arch="x86_64")
    devices = X.sub(dom, "devices")
    if network:
        nic = X.sub(devices, "interface", type="network")
        if mac:
            X.sub(nic, "mac", address=mac)
        X.sub(nic, "source", network=network)
    X.validate(dom, "domain")
    return X.to_string(dom)
