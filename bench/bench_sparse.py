"""Benchmark: sparse round trip of a 4 GiB image holding 16 MiB of data, virtops vs virsh --sparse.

Starts its own lab host, makes the image in a temporary directory, then for each tool uploads it
into a fresh 4 GiB raw volume and downloads it back, timing each direction end to end (CLI
start-up included), and checks the copy is byte-identical and still sparse.
Usage: python bench/bench_sparse.py
"""
from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from virtops.host import Host
from virtops.lab.labhost import Lab
from virtops.ops.pool import PoolSpec

LAB = "bench-sparse"
MiB, GiB = 1024**2, 1024**3


def make_image(path: Path) -> None:
    with open(path, "wb") as image:
        image.truncate(4 * GiB)
        for i in range(4):
            image.seek(i * GiB + i * MiB)
            image.write(os.urandom(4 * MiB))


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def in_process(host: Host, image: Path, tmp: Path) -> float:
    """The same round trip through the Python API: what the transfer itself costs."""
    host.volumes.create("bench", "api", "4G")
    start = time.perf_counter()
    host.volumes.upload("bench/api", str(image))
    host.volumes.download("bench/api", str(tmp / "api.raw"))
    return time.perf_counter() - start


def main() -> None:
    lab = Lab(LAB)
    if lab.exists():
        lab.down()
    lab.up()
    virtops = str(Path(sys.executable).with_name("virtops"))
    try:
        host = Host(lab.uri)
        host.pools.create(PoolSpec(name="bench", target="/var/lib/libvirt/bench"))
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "image.raw"
            make_image(image)
            print(f"image: {image.stat().st_size / GiB:.0f} GiB, {allocated(image) / MiB:.0f} MiB allocated")
            tools = {
                "virtops": ([virtops, "-c", lab.uri, "vol", "upload", "bench/virtops", str(image)],
                            [virtops, "-c", lab.uri, "vol", "download", "bench/virtops", f"{tmp}/virtops.raw"]),
                "virsh": (["virsh", "-c", lab.uri, "vol-upload", "--sparse", "virtops-v", str(image), "--pool", "bench"],
                          ["virsh", "-c", lab.uri, "vol-download", "--sparse", "virtops-v", f"{tmp}/virsh.raw", "--pool", "bench"]),
            }
            figures = {}
            for tool, (upload, download) in tools.items():
                name = "virtops" if tool == "virtops" else "virtops-v"
                host.volumes.create("bench", name, "4G")
                up, down = run(upload), run(download)
                copy = Path(tmp) / f"{tool}.raw"
                stored = lab.state_dir / "lib" / "bench" / name
                same = filecmp.cmp(image, copy, shallow=False)
                figures[tool] = up + down
                print(f"{tool:8} upload {up:.2f} s, download {down:.2f} s; identical: {same}; "
                      f"allocated on host {allocated(stored) / MiB:.0f} MiB, local copy {allocated(copy) / MiB:.0f} MiB")
            print(f"ratio virtops/virsh (round trip, CLI end to end): {figures['virtops'] / figures['virsh']:.2f}")
            core = in_process(host, image, Path(tmp))
            print(f"virtops core, in process (no CLI start-up): round trip {core:.2f} s; "
                  f"ratio to virsh {core / figures['virsh']:.2f}")
        host.close()
    finally:
        lab.down()


if __name__ == "__main__":
    main()
