"""virtops against a remote host: the lab's daemon reached over libvirt's remote protocol on TCP
(qemu+tcp://198.51.100.2/system, what qemu+ssh:// and qemu+tls:// also carry) from a client in
the lab's outside namespace, as an operator reaches another machine. Storage with a data round
trip through streams, a network with its overlap check, a VM with its disk and NICs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import libvirt

from virtops.xmlmodels import doc as X

MIB = 1 << 20


def remote(lab, *args: str, uri: str | None = None) -> subprocess.CompletedProcess:
    """The real CLI, run in the outside namespace: the lab's daemon is another machine from there,
    reached over `uri` (default: its qemu+tcp:// remote URI)."""
    return outside(lab, "-c", uri or lab.remote_uri, *args)


def outside(lab, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`virtops ARGS` run in the lab's outside namespace (`env` added to its environment)."""
    argv = ["ip", "netns", "exec", lab.outside_netns, sys.executable, "-m", "virtops", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LIBVIRT_DEFAULT_URI": "", **(env or {})})


def ok(lab, *args: str) -> str:
    result = remote(lab, *args)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def test_the_handbook_on_a_remote_host(uplink_lab, tmp_path):
    lab = uplink_lab
    info = json.loads(ok(lab, "host", "info", "--json"))
    assert info["uri"] == "qemu+tcp://198.51.100.2/system" and info["hypervisor"] == "QEMU"
    local = libvirt.open(lab.uri)  # the same daemon, seen from here, to check what the remote client did
    try:
        # 0711: QEMU runs as libvirt-qemu (a stock host) and must pass the pool's directory to its disk.
        ok(lab, "pool", "create", "rpool", "--type", "dir", "--target", "/var/lib/libvirt/rpool", "--mode", "0711")
        ok(lab, "vol", "create", "rpool", "rvol", "--capacity", "64M", "--allocation", "0", "--format", "raw")
        assert local.storagePoolLookupByName("rpool").storageVolLookupByName("rvol").info()[1] == 64 * MIB

        # Data through libvirt's streams, both ways, over the network.
        data = tmp_path / "data.img"
        data.write_bytes(bytes(range(256)) * (4 * MIB // 256))
        ok(lab, "vol", "upload", "rpool/rvol", str(data))
        back = tmp_path / "back.img"
        ok(lab, "vol", "download", "rpool/rvol", str(back))
        content = back.read_bytes()
        assert len(content) == 64 * MIB and content[:4 * MIB] == data.read_bytes() and not content[4 * MIB:].strip(b"\0")

        ok(lab, "net", "create", "remotenet", "--subnet", "10.123.0.0/24", "--mode", "isolated")
        clash = remote(lab, "net", "create", "other", "--subnet", "10.123.0.128/25", "--mode", "isolated")
        assert clash.returncode == 1 and "overlaps 10.123.0.0/24 of network remotenet" in clash.stderr
        assert "other" not in local.listNetworks()

        ok(lab, "vm", "create", "rvm", "--memory", "64M", "--disk", "rpool/rvol", "--network", "remotenet", "--import")
        ok(lab, "vm", "attach-nic", "rvm", "--network", "default", "--model", "e1000")
        listed = {v["name"]: v for v in json.loads(ok(lab, "vm", "list", "--all", "--long", "--json"))}
        assert [(n["network"], n["model"]) for n in listed["rvm"]["nics"]] == [("remotenet", "virtio"), ("default", "e1000")]
        assert [d["source"] for d in listed["rvm"]["disks"]] == ["rpool/rvol"]
        brief = {v["name"]: v for v in json.loads(ok(lab, "vm", "list", "--all", "--json"))}
        assert brief["rvm"]["disks"] == ["vda"] and brief["rvm"]["state"] == "shut off"
        root = X.parse(local.lookupByName("rvm").XMLDesc(0))
        assert root.find("devices/disk/source").attrib == {"pool": "rpool", "volume": "rvol"}
    finally:
        for args in (["vm", "delete", "rvm"], ["net", "delete", "remotenet"],
                     ["vol", "delete", "rpool/rvol"], ["pool", "delete", "rpool"]):
            remote(lab, *args)
        local.close()
    assert "rpool" not in local_names(lab)


def local_names(lab) -> list[str]:
    conn = libvirt.open(lab.uri)
    try:
        return [pool.name() for pool in conn.listAllStoragePools()] + [net.name() for net in conn.listAllNetworks()]
    finally:
        conn.close()
