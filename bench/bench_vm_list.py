"""`virtops vm list --all` against `virsh list --all` on a lab host with 1,000 defined domains.

Both commands run as separate processes (start-up included, as an operator meets them), against
the same lab libvirtd, alternately, several times; the medians and their ratio come from one run.
virtops shows more: id, name and state as virsh does, plus vCPUs, memory, disk targets and IPs.
`vm list --all --long` (disk sources and NICs with MAC and network, which need each domain's
XML), `virtops --help` and `virtops net list` are timed alongside, and the load average is
printed: on a shared machine, the ratio from one run is what counts.

    python bench/bench_vm_list.py [--domains 1000] [--running 20] [--repeat 5] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libvirt

from virtops.xmlmodels import doc as X
from virtops.lab.labhost import Lab

LAB = "bench-vm"


def domain_xml(index: int, prefix: str = "bench", mac_byte: int = 0xbe) -> str:
    """A plausible small VM: two disks, one NIC on the default network (bench_fleet.py's too)."""
    dom = X.element("domain", type="qemu")
    X.sub(dom, "name", f"{prefix}{index:04d}")
    X.sub(dom, "memory", 256, unit="MiB")
    X.sub(dom, "vcpu", 1 + index % 4)
    X.sub(X.sub(dom, "os"), "type", "hvm", arch="x86_64")
    devices = X.sub(dom, "devices")
    for n, target in enumerate(("vda", "vdb")):
        disk = X.sub(devices, "disk", type="file", device="disk")
        X.sub(disk, "driver", name="qemu", type="qcow2")
        X.sub(disk, "source", file=f"/var/lib/libvirt/images/{prefix}{index:04d}-{n}.qcow2")
        X.sub(disk, "target", dev=target, bus="virtio")
    nic = X.sub(devices, "interface", type="network")
    X.sub(nic, "mac", address=f"52:54:00:{mac_byte:02x}:{index // 256:02x}:{index % 256:02x}")
    X.sub(nic, "source", network="default")
    X.sub(nic, "model", type="virtio")
    X.validate(dom, "domain")
    return X.to_string(dom)


def define_domains(uri: str, count: int) -> float:
    conn = libvirt.open(uri)
    started = time.perf_counter()
    existing = {d.name() for d in conn.listAllDomains()}
    for index in range(count):
        if f"bench{index:04d}" not in existing:
            conn.defineXML(domain_xml(index))
    conn.close()
    return time.perf_counter() - started


def start_paused_domains(uri: str, count: int) -> None:
    """Running domains, as a real host has some: QEMU started paused, with no disk to boot from
    (the listing reads the running domains' XML, and paused costs no CPU)."""
    conn = libvirt.open(uri)
    existing = {dom.name(): dom for dom in conn.listAllDomains()}
    for index in range(count):
        name = f"benchrun{index:02d}"
        dom = existing.get(name)
        if dom is None:
            root = X.element("domain", type="qemu")
            X.sub(root, "name", name)
            X.sub(root, "memory", 64, unit="MiB")
            X.sub(X.sub(root, "os"), "type", "hvm", arch="x86_64")
            X.sub(root, "devices")
            X.validate(root, "domain")
            dom = conn.defineXML(X.to_string(root))
        if not dom.isActive():
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    conn.close()


def child_env() -> dict[str, str]:
    """An installed virtops runs from compiled bytecode (pip compiles it). Where the environment
    forbids writing bytecode (PYTHONDONTWRITEBYTECODE), every run would compile virtops' sources
    again (about 20 ms here), so the bytecode is kept under a temporary prefix instead."""
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "virtops-bench-pycache")
    return env


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=True, env=child_env())
    return time.perf_counter() - started, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--running", type=int, default=20, help="Domains started (paused) besides the defined ones.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Leave the lab host running.")
    parser.add_argument("--lab", default=LAB, help=f"The lab host's name (default {LAB}; on a shared machine, one of your own).")
    args = parser.parse_args()
    virsh = shutil.which("virsh")
    virtops = str(Path(sys.executable).with_name("virtops"))
    if not virsh:
        print("virsh is needed as the reference (Debian package libvirt-clients).", file=sys.stderr)
        return 1
    lab = Lab(args.lab)
    lab.up()
    try:
        seconds = define_domains(lab.uri, args.domains)
        start_paused_domains(lab.uri, args.running)
        print(f"{args.domains} domains defined in {seconds:.1f} s, {args.running} more running (paused), "
              f"on lab host {args.lab}")
        commands = {"virsh list --all": [virsh, "-c", lab.uri, "list", "--all"],
                    "virtops vm list --all": [virtops, "-c", lab.uri, "vm", "list", "--all"],
                    "virtops vm list --all -l": [virtops, "-c", lab.uri, "vm", "list", "--all", "--long"],
                    "virtops --help": [virtops, "--help"],
                    "virtops net list": [virtops, "-c", lab.uri, "net", "list"]}
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        times: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, str] = {}
        for argv in commands.values():  # warm the daemon, the page cache and the bytecode alike for all
            timed(argv)
        for _ in range(args.repeat):
            for name, argv in commands.items():
                elapsed, outputs[name] = timed(argv)
                times[name].append(elapsed)
        for name, values in times.items():
            rows = sum(1 for line in outputs[name].splitlines() if "bench" in line)
            print(f"{name:24} median {statistics.median(values) * 1000:7.0f} ms  "
                  f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}"
                  + (f"; {rows} rows)" if "list --all" in name else ")"))
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        virsh_median = statistics.median(times["virsh list --all"])
        for name in ("virtops vm list --all", "virtops vm list --all -l"):
            print(f"ratio {name} / virsh list --all: {statistics.median(times[name]) / virsh_median:.2f} "
                  "(below 1 = virtops faster)")
        return 0
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    sys.exit(main())
