"""Live migration time of a 128 MiB test guest between two lab hosts on one segment: its disk on the
shared NFS pool (only memory moves) against `--copy-storage` between dir pools (memory and disk).

Both kinds run alternately in one run, on the same two hosts, each time on a freshly booted guest
(the tiny test guest in shell mode, 128 MiB of memory, a 16 MiB raw disk): the time is what
`vm migrate` reports, from the start of libvirt's migration to its end (the pre-flight checks
before are not counted; they are printed apart). Medians come from one run and the load average
is printed alongside: on a shared machine, the figures of one run are what compare.

    python bench/bench_migrate.py [--repeat 5] [--disk 16M] [--prefix bench-mig] [--keep]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from virtops.host import Host
from virtops.lab.labhost import Lab
from virtops.ops.migrate import MigrateRequest, migrate, preflight
from virtops.ops.pool import PoolSpec
from virtops.ops.vm import CreateRequest, DiskRequest
from virtops.testguest.image import build_guest_image, kernel_cmdline, wait_for_report

VM = "bench"
MEMORY = "128M"
DISK = "16M"
KINDS = {"shared NFS pool": ("nfs", False), "--copy-storage (dir pools)": ("local", True)}


def make_pools(host: Host) -> None:
    host.pools.create(PoolSpec(name="nfs", type="netfs", host="192.168.0.254", source_path="/nfs",
                               target="/var/lib/libvirt/nfs", format="nfs"))
    host.pools.create(PoolSpec(name="local", type="dir", target="/var/lib/libvirt/local", mode="0711"))


def boot_guest(host: Host, pool: str, image, disk: str) -> None:
    host.volumes.create(pool, VM, capacity=disk, allocation=0, format="raw")
    host.vms.create(CreateRequest(
        name=VM, memory=MEMORY, vcpus=1, disks=[DiskRequest(volume=f"{pool}/{VM}")],
        boot={"kernel": str(image.kernel), "initrd": str(image.initrd), "cmdline": kernel_cmdline("shell")}))
    host.vms.start(VM)
    console = host.vms.console(VM)
    try:
        wait_for_report(console, lambda report: "vda" in report.disks)  # booted: its memory in use
    finally:
        console.close()


def remove_guest(source: Host, dest: Host, pool: str, copied: bool) -> None:
    dest.vms.delete(VM, remove_storage=True, force=True)  # on the nfs pool that is the source's disk too
    if copied:
        source.volumes.delete(f"{pool}/{VM}")  # the source's copy stays after --copy-storage
    else:
        source.pools.refresh(pool)  # the source's libvirt learns that the shared volume went


def remove_leftovers(hosts: list[Host]) -> None:
    """What an interrupted run left: the segment's NFS export outlives its labs."""
    for host in hosts:
        if VM in [vm.name for vm in host.vms.list()]:
            host.vms.delete(VM, remove_storage=True, force=True)
        for pool in ("nfs", "local"):
            host.pools.refresh(pool)
            if VM in [vol.name for vol in host.volumes.list(pool)]:
                host.volumes.delete(f"{pool}/{VM}")


def one_move(source: Host, dest: Host, dest_lab: Lab, pool: str, copy: bool, image, disk: str) -> tuple[float, float]:
    """(pre-flight seconds, migration seconds) of one move of a freshly booted guest."""
    boot_guest(source, pool, image, disk)
    request = MigrateRequest(VM, copy_storage=copy)
    started = time.perf_counter()
    preflight(source.conn, dest.conn, request, f"lab:{dest_lab.name}")
    checked = time.perf_counter() - started
    result = migrate(source.conn, dest.conn, dest_lab.peer_uri, request, f"lab:{dest_lab.name}")
    if dest.vms.info(VM).state != "running":
        raise SystemExit(f"the guest does not run on {dest_lab.name} after the move")
    remove_guest(source, dest, pool, copy)
    return checked, result.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--disk", default=DISK, help=f"The guest's disk (default {DISK}; the copy moves all of it).")
    parser.add_argument("--prefix", default="bench-mig", help="Lab names PREFIX-a, PREFIX-b; the segment PREFIX.")
    parser.add_argument("--keep", action="store_true", help="Leave the lab hosts running.")
    args = parser.parse_args()
    labs = [Lab(f"{args.prefix}-{side}") for side in "ab"]
    image = build_guest_image()
    hosts: list[Host] = []
    try:
        for lab in labs:
            lab.up(segment=args.prefix)
            hosts.append(Host(lab.uri))
            make_pools(hosts[-1])
        source, dest = hosts
        remove_leftovers(hosts)
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        checks: list[float] = []
        for _ in range(args.repeat):
            for kind, (pool, copy) in KINDS.items():
                checked, seconds = one_move(source, dest, labs[1], pool, copy, image, args.disk)
                times[kind].append(seconds)
                checks.append(checked)
        print(f"{'128 MiB guest, ' + args.disk + ' disk':28} {'median':>8} {'min':>7} {'max':>7}  (n={args.repeat})")
        for kind, figures in times.items():
            print(f"{kind:28} {statistics.median(figures):7.2f}s {min(figures):6.2f}s {max(figures):6.2f}s")
        print(f"{'pre-flight checks':28} {statistics.median(checks):7.2f}s {min(checks):6.2f}s {max(checks):6.2f}s")
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        return 0
    finally:
        for host in hosts:
            host.close()
        if not args.keep:
            for lab in reversed(labs):
                lab.down()


if __name__ == "__main__":
    sys.exit(main())
