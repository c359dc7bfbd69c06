"""`virtops -H ... vm list --all` (every host at once) against `virsh -c URI list --all` run host
after host, over the same URIs: N lab hosts (4 unless told) with 200 defined domains each.

Every command runs as its own process (start-up included, as an operator meets them), in rounds;
in each round virsh asks the hosts one after the other, then virtops asks them all at once. The
medians of the rounds and their ratio come from one run; the load average is printed alongside,
since on a shared machine only a ratio measured in one run means anything. The domains are
defined, not started: listing them is the work, not running them.

    python bench/bench_fleet.py [--hosts 4] [--domains 200] [--repeat 7] [--keep]
    python bench/bench_fleet.py --uri qemu+ssh://root@a/system --uri qemu+ssh://root@b/system
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

from bench_vm_list import domain_xml as vm_list_domain_xml  # the same plausible small VM
from virtops.lab.labhost import Lab

LAB_PREFIX = "bench-fleet-"


def domain_xml(index: int) -> str:
    return vm_list_domain_xml(index, prefix="fleet", mac_byte=0xf1)


def define_domains(uri: str, count: int) -> None:
    conn = libvirt.open(uri)
    try:
        existing = {d.name() for d in conn.listAllDomains()}
        for index in range(count):
            if f"fleet{index:04d}" not in existing:
                conn.defineXML(domain_xml(index))
    finally:
        conn.close()


def child_env(hosts_file: Path) -> dict[str, str]:
    """The registry of this run only; bytecode kept where PYTHONDONTWRITEBYTECODE forbids writing it
    (as in bench_vm_list.py), so that no run compiles virtops again."""
    env = {**os.environ, "VIRTOPS_HOSTS": str(hosts_file), "VIRTOPS_SYSTEM_HOSTS": "", "LIBVIRT_DEFAULT_URI": ""}
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "virtops-bench-pycache")
    return env


def timed(commands: list[list[str]], env: dict[str, str]) -> tuple[float, str]:
    """The commands one after the other; their time together and their output."""
    started = time.perf_counter()
    out = [subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout for argv in commands]
    return time.perf_counter() - started, "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4, help="Lab hosts to bring up (without --uri).")
    parser.add_argument("--uri", action="append", default=[], help="Use this host instead of lab hosts (repeatable).")
    parser.add_argument("--domains", type=int, default=200, help="Domains defined on each host.")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Leave the lab hosts running.")
    args = parser.parse_args()
    virsh = shutil.which("virsh")
    virtops = str(Path(sys.executable).with_name("virtops"))
    if not virsh:
        print("virsh is needed as the reference (Debian package libvirt-clients).", file=sys.stderr)
        return 1
    labs = [] if args.uri else [Lab(f"{LAB_PREFIX}{i}") for i in range(args.hosts)]
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        for lab in labs:
            lab.up()
        uris = args.uri or [lab.uri for lab in labs]
        hosts_file = work / "hosts.yaml"
        env = child_env(hosts_file)
        names = [f"h{i}" for i in range(len(uris))]
        for name, uri in zip(names, uris):
            subprocess.run([virtops, "host", "add", name, uri], check=True, env=env, capture_output=True)
        started = time.perf_counter()
        for uri in uris:
            define_domains(uri, args.domains)
        print(f"{len(uris)} hosts, {args.domains} domains defined on each ({time.perf_counter() - started:.1f} s)")
        commands = {
            "virsh list --all, host after host": [[virsh, "-c", uri, "list", "--all"] for uri in uris],
            "virtops -H ... vm list --all": [[virtops, "-H", ",".join(names), "vm", "list", "--all"]],
        }
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        times: dict[str, list[float]] = {name: [] for name in commands}
        rows: dict[str, int] = {}
        for argv in commands.values():  # warm the daemons, the page cache and the bytecode alike for both
            timed(argv, env)
        for _ in range(args.repeat):
            for name, argv in commands.items():
                elapsed, out = timed(argv, env)
                times[name].append(elapsed)
                rows[name] = sum(1 for line in out.splitlines() if "fleet" in line)
        for name, values in times.items():
            print(f"{name:36} median {statistics.median(values) * 1000:7.0f} ms  (min {min(values) * 1000:.0f}, "
                  f"max {max(values) * 1000:.0f}; {rows[name]} rows)")
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        ratio = statistics.median(times["virtops -H ... vm list --all"]) / statistics.median(times["virsh list --all, host after host"])
        print(f"ratio virtops -H / virsh host after host: {ratio:.2f} (goal <= 0.5)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            for lab in labs:
                lab.down()


if __name__ == "__main__":
    sys.exit(main())
