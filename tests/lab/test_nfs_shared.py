"""SCENARIO.md steps 4 and 8 for real: two lab hosts on one segment mount the handbook's NFS pool
(192.168.0.254:/nfs, nfs-ganesha on the segment) through the labs' userspace NFS client
(lab/nfsclient.py, FUSE over libnfs, mount.nfs in each lab's own mount namespace only); a volume
made on one is seen on the other, a guest boots from it and writes, and a server that goes away
turns into one sentence in bounded time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import cli_ok, run_cli
from virtops.lab.labhost import MOUNT_NFS, Lab, Segment
from virtops.ops.pool import SOURCES_TIMEOUT_S
from virtops.testguest.image import kernel_cmdline, wait_for_report

TOKEN = str(os.getpid() % 100000)
SEGMENT = f"nf-{TOKEN}"
NFS_POOL = ("pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254", "--source-path", "/nfs",
            "--target", "/var/lib/libvirt/nfs")
MARK = "VIRTOPS-NFS-WRITTEN-BY-THE-GUEST"


@pytest.fixture(scope="module")
def pair():
    labs = [Lab(f"pytest-nf{n}-{TOKEN}") for n in (1, 2)]
    try:
        for lab in labs:
            lab.up(segment=SEGMENT)
        yield labs
    finally:
        for lab in labs:
            lab.down()


def real_host_mount_helper() -> bytes:
    with open(MOUNT_NFS, "rb") as helper:
        return helper.read()


def test_the_handbook_pool_mounts_on_two_hosts_and_shares_its_volumes(pair):
    first, second = pair
    stock_helper = real_host_mount_helper()
    for lab in pair:
        assert "started" in cli_ok(lab.uri, *NFS_POOL)
    mounted = subprocess.run(["nsenter", f"--mount={first.mount_ns}", "--", "findmnt", "-n", "-o", "SOURCE",
                              "/var/lib/libvirt/nfs"], capture_output=True, text=True).stdout.strip()
    assert mounted == "192.168.0.254:/nfs"
    # The real host's mount helper and mount table are untouched.
    assert real_host_mount_helper() == stock_helper
    assert "/var/lib/libvirt/nfs" not in open("/proc/self/mountinfo").read()

    cli_ok(first.uri, "vol", "create", "nfs", "nfs", "--capacity", "5G", "--allocation", "512M", "--format", "raw")
    cli_ok(second.uri, "pool", "refresh", "nfs")
    seen = {v["name"]: v for v in json.loads(cli_ok(second.uri, "vol", "list", "nfs", "--json"))}
    assert seen["nfs"]["capacity"] == 5 * 1024**3 and seen["nfs"]["allocation"] >= 512 * 1024**2
    cli_ok(second.uri, "vol", "delete", "nfs/nfs")  # and the other way round: gone on the first
    cli_ok(first.uri, "pool", "refresh", "nfs")
    assert "nfs" not in [v["name"] for v in json.loads(cli_ok(first.uri, "vol", "list", "nfs", "--json"))]


def test_a_guest_boots_from_the_nfs_pool_and_writes_to_it(pair, guest_image, tmp_path):
    first, second = pair
    cli_ok(first.uri, "vol", "create", "nfs", "guestdisk", "--capacity", "16M", "--format", "raw")
    cli_ok(first.uri, "vm", "create", "nfsguest", "--memory", "128M", "--vcpus", "1", "--disk", "nfs/guestdisk",
           "--boot", f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}")
    cli_ok(first.uri, "vm", "start", "nfsguest")
    from virtops.host import Host

    host = Host(first.uri)
    try:
        console = host.vms.console("nfsguest")
        try:
            report = wait_for_report(console, lambda r: "vda" in r.disks)
            assert report.disks["vda"] == 16 * 1024**2
            since = len(console.buffer)
            # $((1+1)): the echoed command line itself must not look like the answer
            console.write(f"echo {MARK} | dd of=/dev/vda conv=fsync && echo DD-DONE-$((1+1))\n".encode())
            assert "DD-DONE-2" in console.wait_for(lambda text: "DD-DONE-2" in text, 60, since)
        finally:
            console.close()
        cli_ok(first.uri, "vm", "destroy", "nfsguest")
    finally:
        host.close()
    # The second host reads what the guest wrote, through its own mount of the export.
    copy = tmp_path / "guestdisk"
    cli_ok(second.uri, "pool", "refresh", "nfs")
    cli_ok(second.uri, "vol", "download", "nfs/guestdisk", str(copy))
    assert copy.read_bytes()[:len(MARK)].decode() == MARK
    cli_ok(first.uri, "vm", "delete", "nfsguest")
    cli_ok(first.uri, "vol", "delete", "nfs/guestdisk")


# A host whose RPC ports take packets and never answer (a firewall that drops them, a hung server):
# libvirt's showmount would wait about two minutes there.
SILENT_RPC = """
import socket, threading
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 111))
tcp = socket.socket()
tcp.bind(("0.0.0.0", 111))
tcp.listen(16)
held = []
threading.Thread(target=lambda: [held.append(tcp.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
print("listening", flush=True)
while True:
    udp.recvfrom(65536)
"""


def test_browsing_a_host_that_never_answers_ends_in_seconds_with_one_sentence(pair):
    first, second = pair
    address = second.status().segment_address.split("/")[0]
    silent = subprocess.Popen(["ip", "netns", "exec", second.netns, sys.executable, "-c", SILENT_RPC],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert silent.stdout.readline().strip() == "listening"
        result = run_cli("pool", "sources", "netfs", "--host", address, uri=first.uri)
        assert result.returncode == 1, result.stdout
        assert result.stderr.strip() == (f"error: host {address} did not answer within {SOURCES_TIMEOUT_S} s: no "
                                         "NFS server answers there, or a firewall drops its RPC packets; check "
                                         "the address."), result.stderr
        # The daemon's own showmount is still waiting; the handbook's server answers meanwhile.
        assert "192.168.0.254  /nfs" in cli_ok(first.uri, "pool", "sources", "netfs", "--host", "192.168.0.254")
    finally:
        silent.kill()
        silent.wait()


def test_a_server_gone_is_one_sentence_in_bounded_time(pair):
    first, second = pair
    Segment(SEGMENT).nfs_server().stop()
    for lab, argv in ((first, ("pool", "refresh", "nfs")), (second, ("pool", "stop", "nfs")),
                      (second, ("pool", "start", "nfs"))):
        started = time.monotonic()
        result = run_cli(*argv, uri=lab.uri)
        elapsed = time.monotonic() - started
        if argv[1] == "stop":  # unmounting needs no server
            assert result.returncode == 0, result.stderr
            continue
        assert result.returncode == 1, (argv, result.stdout)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert elapsed < 60, (argv, elapsed)
    assert "inactive" in cli_ok(second.uri, "pool", "info", "nfs")
