"""`vm create`, listing, life cycle and delete on a lab host (real libvirtd, one boot of the test guest).
Every refusal: exit 1, one sentence, and the XML of every object unchanged."""
from __future__ import annotations

import json
import os
import tempfile

import pytest

from tests.helpers import cli_ok, host_state, let_qemu_in, run_cli
from tests.lab.test_handbook_guest import _pool, _volume, remove_domains_and_pool
from virtops.xmlmodels import doc as X
from virtops.testguest.image import kernel_cmdline

POOL = "vmtest"
MIB = 1024**2


@pytest.fixture
def vm_host(host):
    conn = host.conn
    _pool(conn, POOL)
    let_qemu_in(host.uri, POOL)  # the handbook's 0700 pool, opened as the access check proposes
    for name in ("sys", "data"):
        _volume(conn, name, 64 * MIB, pool=POOL)
    yield host
    remove_domains_and_pool(conn, POOL)


def _boot(image) -> str:
    return f"kernel={image.kernel},initrd={image.initrd},cmdline={kernel_cmdline('shell')}"


def test_create_refusals_leave_the_host_unchanged(lab, vm_host, guest_image):
    conn = vm_host.conn
    cli_ok(lab.uri, "vm", "create", "first", "--memory", "128M", "--disk", f"{POOL}/sys", "--network", "default")
    mac = json.loads(cli_ok(lab.uri, "vm", "iflist", "first", "--json"))[0]["mac"]
    before = host_state(conn)
    # The core places each refusal in the request (its second disk, its first NIC); the CLI names
    # the option (--disk #2) or, for a field of its own, the field.
    refusals = [
        ("name", ["first", "--memory", "128M"]),
        ("memory", ["second", "--memory", "100T"]),
        ("vcpus", ["second", "--memory", "128M", "--vcpus", "512"]),
        ("--disk #1: no storage pool", ["second", "--memory", "128M", "--disk", "nopool/sys"]),
        ("--disk #2: vmtest/sys is attached to first", ["second", "--memory", "128M", "--disk", f"{POOL}/data",
                                                        "--disk", f"{POOL}/sys"]),
        ("--network #1: no network", ["second", "--memory", "128M", "--network", "nonet"]),
        (f"--network #1: {mac} is already used by first", ["second", "--memory", "128M", "--network", f"default,mac={mac}"]),
        ("--network #1: '52:54:00:zz:00:01' is not a MAC address", ["second", "--memory", "128M", "--network", "default,mac=52:54:00:zz:00:01"]),
        ("--network #1: 'tulip9000' is not a NIC model", ["second", "--memory", "128M", "--network", "default,model=tulip9000"]),
        ("--new-disk #1: no storage pool", ["second", "--memory", "128M", "--new-disk", "nopool:10M"]),
        ("--new-disk #1: 112589990684262400 bytes do not fit", ["second", "--memory", "128M", "--new-disk", f"{POOL}:100P"]),
        ("boot", ["second", "--memory", "128M", "--import", "--boot", "kernel=/k"]),
        ("boot: kernel /nonexistent/vmlinuz is not a file", ["second", "--memory", "128M", "--boot",
                                                             "kernel=/nonexistent/vmlinuz"]),
    ]
    for field, args in refusals:
        result = run_cli("vm", "create", *args, uri=lab.uri)
        assert result.returncode == 1, (field, result.stdout, result.stderr)
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and field in message, (field, message)
        assert host_state(conn) == before, field
    # Several mistakes at once: each on a line of its own.
    result = run_cli("vm", "create", "second", "--memory", "100T", "--disk", "nopool/sys", "--network", "nonet",
                     uri=lab.uri)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 3, result.stderr
    assert "memory" in lines[0] and "--disk #1" in lines[1] and "--network #1" in lines[2], result.stderr
    assert host_state(conn) == before
    # A failure after the new volume exists (QEMU cannot load a "kernel" that is no kernel): all undone.
    with tempfile.NamedTemporaryFile(prefix="virtops-not-a-kernel-", dir="/tmp") as junk:
        junk.write(b"not a kernel\n" * 64)
        junk.flush()
        os.chmod(junk.name, 0o644)
        result = run_cli("vm", "create", "second", "--memory", "128M", "--new-disk", f"{POOL}:16M",
                         "--boot", f"kernel={junk.name}", "--start", uri=lab.uri)
    assert result.returncode == 1 and "nothing was kept (undone: defined VM second" in result.stderr, result.stderr
    assert f"created volume {POOL}/second-vda.qcow2" in result.stderr, result.stderr
    assert host_state(conn) == before
    # Usage errors are exit 2.
    assert run_cli("vm", "create", "second", uri=lab.uri).returncode == 2


def test_life_cycle_list_define_and_delete(lab, vm_host, guest_image):
    conn = vm_host.conn
    cli_ok(lab.uri, "vm", "create", "life", "--memory", "192M", "--vcpus", "2", "--new-disk", f"{POOL}:16M:raw",
        "--disk", f"{POOL}/data,serial=DATA1,cache=none", "--network", "default,model=e1000",
        "--boot", _boot(guest_image), "--start")
    cli_ok(lab.uri, "vm", "create", "idle", "--memory", "128M", "--disk", f"{POOL}/sys", "--import")
    root = X.parse(conn.lookupByName("life").XMLDesc(0))
    assert root.get("type") == vm_host.virt_type()
    assert root.find("features/acpi") is not None and root.find("devices/console") is not None
    assert [d.get("type") for d in root.iterfind("devices/disk")] == ["volume", "volume"]

    running = json.loads(cli_ok(lab.uri, "vm", "list", "--json"))
    assert [v["name"] for v in running] == ["life"]
    everything = {v["name"]: v for v in json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--long", "--json"))}
    life = everything["life"]
    assert (life["state"], life["vcpus"], life["memory_bytes"]) == ("running", 2, 192 * MIB)
    assert [(d["target"], d["source"]) for d in life["disks"]] == [("vda", f"{POOL}/data"), ("vdb", f"{POOL}/life-vdb.raw")]
    assert life["nics"][0]["network"] == "default" and life["nics"][0]["model"] == "e1000"
    assert everything["idle"]["state"] == "shut off"
    brief = {v["name"]: v for v in json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--json"))}
    assert (brief["life"]["disks"], brief["idle"]["disks"], brief["idle"]["state"]) == (["vda", "vdb"], ["vda"], "shut off")
    table = cli_ok(lab.uri, "vm", "list", "--all")
    assert "life" in table and "idle" in table and "shut off" in table
    assert "vda" in cli_ok(lab.uri, "domblklist", "life")  # virsh's name works too

    cli_ok(lab.uri, "vm", "suspend", "life")
    assert json.loads(cli_ok(lab.uri, "vm", "info", "life", "--json"))["state"] == "paused"
    cli_ok(lab.uri, "vm", "resume", "life")
    assert run_cli("vm", "start", "life", uri=lab.uri).returncode == 1  # already running
    before = host_state(conn)
    refused = run_cli("vm", "delete", "life", uri=lab.uri)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert host_state(conn) == before
    cli_ok(lab.uri, "vm", "destroy", "life")
    assert json.loads(cli_ok(lab.uri, "vm", "info", "life", "--json"))["state"] == "shut off"

    # dumpxml -> delete -> define gives back the same VM.
    saved = cli_ok(lab.uri, "vm", "dumpxml", "idle")
    cli_ok(lab.uri, "vm", "delete", "idle")
    result = run_cli("vm", "define", "/dev/stdin", uri=lab.uri, input=saved)
    assert result.returncode == 0, result.stderr
    assert cli_ok(lab.uri, "vm", "dumpxml", "idle") == saved

    out = cli_ok(lab.uri, "vm", "delete", "life", "--remove-storage")
    assert "life-vdb.raw" in out and "data" in out
    assert sorted(conn.storagePoolLookupByName(POOL).listVolumes()) == ["sys"]
    assert "life" not in [d.name() for d in conn.listAllDomains()]
