"""Benchmark: `virtops vol list` against `virsh vol-list --details` on a pool of 3,000 volumes.

Starts its own lab host (a private libvirtd, nothing on the real host changes), fills a pool with
3,000 small files (refreshing a dir pool is how libvirt learns of them), defines a few VMs that use
some of them, then times each command end to end as an operator would run it, output piped.
Prints the figures and the ratio from this one run. Usage: python bench/bench_vol_list.py [COUNT]
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.host import Host
from virtops.lab.labhost import Lab
from virtops.ops.pool import PoolSpec

LAB = "bench-vol"
ROUNDS = 5


def fill(lab: Lab, host: Host, count: int) -> None:
    host.pools.create(PoolSpec(name="bench", target="/var/lib/libvirt/bench"))
    directory = lab.state_dir / "lib" / "bench"
    for i in range(count):
        with open(directory / f"vol{i:05d}.img", "wb") as image:
            image.truncate(1024 * 1024)
    host.conn.storagePoolLookupByName("bench").refresh(0)
    for i in range(10):
        disks = [DiskSpec(target="vdb", path=f"/var/lib/libvirt/bench/vol{i:05d}.img"),
                 DiskSpec(target="vdc", pool="bench", volume=f"vol{i + 100:05d}.img")]
        host.conn.defineXML(DomainSpec(name=f"vm{i}", disks=disks).to_xml())


def timed(commands: dict[str, list[str]]) -> dict[str, tuple[float, int]]:
    """Median wall time over ROUNDS runs of each command, run in turn so that load from elsewhere
    on the machine falls on both alike; with the number of output lines (both list everything)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    lines: dict[str, int] = {}
    for _ in range(ROUNDS):
        for name, argv in commands.items():
            start = time.perf_counter()
            result = subprocess.run(argv, capture_output=True, text=True, check=True)
            times[name].append(time.perf_counter() - start)
            lines[name] = len(result.stdout.splitlines())
    return {name: (statistics.median(t), lines[name]) for name, t in times.items()}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    lab = Lab(LAB)
    if lab.exists():
        lab.down()
    lab.up()
    try:
        host = Host(lab.uri)
        fill(lab, host, count)
        virtops = str(Path(sys.executable).with_name("virtops"))
        results = timed({
            "ours": [virtops, "-c", lab.uri, "vol", "list", "bench"],
            "json": [virtops, "-c", lab.uri, "vol", "list", "bench", "--json"],
            "virsh": ["virsh", "-c", lab.uri, "vol-list", "bench", "--details"],
        })
        (ours, our_lines), (ours_json, _), (theirs, their_lines) = results["ours"], results["json"], results["virsh"]
        print(f"volumes: {count} (10 VMs use 20 of them); median of {ROUNDS} runs each, output piped")
        print(f"virtops vol list:          {ours:.2f} s  ({our_lines} lines, with 'used by')")
        print(f"virtops vol list --json:   {ours_json:.2f} s")
        print(f"virsh vol-list --details:  {theirs:.2f} s  ({their_lines} lines, no format, no 'used by')")
        print(f"ratio virtops/virsh:       {ours / theirs:.2f}")
        host.close()
    finally:
        lab.down()


if __name__ == "__main__":
    main()
