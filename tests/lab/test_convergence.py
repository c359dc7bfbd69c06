"""Convergence under faults, on a lab host of its own: each multi-step command is killed (SIGKILL) at
many points in time, or has its libvirtd restarted under it, then run again; the host must then be
exactly as one clean run leaves it (no orphans, no stale temp folders), and every message one sentence.

Where the kill lands: first just before each step in turn (the fault hook in base/undo.py, whose
VIRTOPS_FAULT_KILL_AT=N makes the command SIGKILL itself before its Nth step), until a run goes
through; then ROUNDS more, half timed (spread over a clean run's duration), half a little after the
command's first change on the host (polled through libvirt), which also lands kills inside a step. Each round is classified by the state
the kill left (before, middle, after); a scenario whose kills never landed in the middle fails.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import libvirt
import pytest

from tests.helpers import host_state
from virtops.daemon.lookups import when_pool_free
from virtops.lab.labhost import Lab
from virtops.xmlmodels import doc as X

ROUNDS = int(os.environ.get("VIRTOPS_FAULT_ROUNDS", "10"))  # more for a longer hunt
RESTARTS = 3
DISK_POOL = "cvdisks"


@pytest.fixture(scope="module")
def fault_lab():
    """Its own lab: these tests restart its libvirtd, which would disturb tests sharing a lab."""
    lab = Lab(f"pytest-cv-{os.getpid() % 100000}")
    if lab.exists():
        lab.down()
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def conn(fault_lab, tmp_path, monkeypatch):
    """A connection of the test's own (reopened after each daemon restart), and the commands' lock
    and temp directories in tmp_path, where the test can see what a killed run leaves."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path / "locks"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    holder = _Conn(fault_lab.uri)
    yield holder
    holder.close()


class _Conn:
    def __init__(self, uri: str):
        self.uri = uri
        self._conn: libvirt.virConnect | None = None

    def get(self) -> libvirt.virConnect:
        if self._conn is None or not self._alive():
            deadline = time.monotonic() + 60
            while True:
                try:
                    self._conn = libvirt.open(self.uri)
                    break
                except libvirt.libvirtError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        return self._conn

    def _alive(self) -> bool:
        try:
            return bool(self._conn.isAlive())
        except libvirt.libvirtError:
            return False

    def reopen(self) -> None:
        """After a daemon restart (without libvirt's event loop the old connection does not notice)."""
        self.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass


# -- the state compared: each object's XML without what differs from run to run -------------------
def comparable(conn: libvirt.virConnect) -> dict[str, str]:
    """host_state without UUIDs, generated MACs and volume timestamps: two clean runs of a command
    leave equal states."""
    state = {}
    for key, text in host_state(conn).items():
        flags, xml = text[: text.index("<")], text[text.index("<"):]
        root = X.parse(xml)
        for path in ("uuid", "mac", "target/timestamps", "devices/interface/mac"):
            for node in root.findall(path):
                node.getparent().remove(node)
        state[key] = flags + X.to_string(root)
    return state


@dataclass
class Scenario:
    name: str
    argv: list[str]
    first_change: Callable[[libvirt.virConnect], bool]  # the command has started changing the host
    clean: Callable[[libvirt.virConnect], None]  # back to the state before the command
    prepare: Callable[["_Conn"], None] = lambda conn: None  # what the command needs (made once)
    figures: dict = field(default_factory=lambda: {"injected": 0, "converged": 0, "before": 0, "middle": 0, "after": 0})


def _start(uri: str, argv: list[str], kill_at_step: int | None = None) -> subprocess.Popen:
    """The command as a process; with kill_at_step, it kills itself (SIGKILL) just before its Nth
    step (the fault hook in base/undo.py)."""
    env = {**os.environ, **({"VIRTOPS_FAULT_KILL_AT": str(kill_at_step)} if kill_at_step else {})}
    return subprocess.Popen([sys.executable, "-m", "virtops", "-c", uri, *argv], text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(uri: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virtops", "-c", uri, *argv], capture_output=True, text=True,
                          timeout=600)


def _kill_at(proc: subprocess.Popen, conn: _Conn, scenario: Scenario, when: tuple[str, float]) -> None:
    """SIGKILL after `delay` seconds from the start ("timed"), or that long after the command's
    first change ("after-change")."""
    kind, delay = when
    if kind == "after-change":
        while proc.poll() is None and not scenario.first_change(conn.get()):
            time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=600)


def _stale_temp_folders() -> list[str]:
    return sorted(p.name for p in Path(os.environ["TMPDIR"]).glob("virtops-*"))


def converge_after_kills(conn: _Conn, scenario: Scenario) -> dict:
    """The harness: a clean run for the intended state and its duration, then ROUNDS kills, each
    followed by the same command run again and the host compared with the intended state."""
    scenario.prepare(conn)
    before = comparable(conn.get())
    started = time.monotonic()
    clean = _run(conn.uri, scenario.argv)
    duration = time.monotonic() - started
    assert clean.returncode == 0, clean.stderr
    wanted = comparable(conn.get())
    assert wanted != before
    scenario.clean(conn.get())
    assert comparable(conn.get()) == before, "the scenario's clean-up does not restore the start"
    failures = []
    step = 0
    while True:  # a kill before each step in turn, until the command runs through
        step += 1
        proc = _start(conn.uri, scenario.argv, kill_at_step=step)
        proc.communicate(timeout=600)
        if proc.returncode == 0:
            scenario.clean(conn.get())
            break
        assert proc.returncode == -signal.SIGKILL, (step, proc.returncode)
        _check_round(conn, scenario, ("step", step), before, wanted, failures)
    for round_ in range(ROUNDS):
        when = (("timed", duration * (round_ // 2 + 1) / (ROUNDS // 2 + 1)) if round_ % 2 == 0 else
                ("after-change", 0.02 * (round_ // 2)))
        _kill_at(_start(conn.uri, scenario.argv), conn, scenario, when)
        _check_round(conn, scenario, when, before, wanted, failures)
    print(f"{scenario.name}: {json.dumps(scenario.figures)}")
    assert not failures, failures
    assert scenario.figures["middle"] > 0, f"no kill of {scenario.name} landed midway: {scenario.figures}"
    return scenario.figures


def _check_round(conn: _Conn, scenario: Scenario, when: tuple, before: dict, wanted: dict, failures: list) -> None:
    """After a kill: classify what it left, run the same command again, compare with the intended
    state, and clean up for the next round."""
    scenario.figures["injected"] += 1
    left = comparable(conn.get())
    scenario.figures["before" if left == before else "after" if left == wanted else "middle"] += 1
    again = _run(conn.uri, scenario.argv)
    now = comparable(conn.get())
    # A kill after the last step (while it printed) left the job done: the run again then
    # rightly says the object exists; anything else must succeed.
    finished = again.returncode == 0 or (left == wanted and "already" in again.stderr)
    if finished and now == wanted and not _stale_temp_folders():
        scenario.figures["converged"] += 1
    else:
        failures.append((when, again.returncode, again.stderr.strip()[-1500:], sorted(set(now.items()) ^ set(wanted.items())),
                         _stale_temp_folders()))
    scenario.clean(conn.get())
    assert comparable(conn.get()) == before


# -- the commands ---------------------------------------------------------------------------------
def _network_exists(name: str) -> Callable[[libvirt.virConnect], bool]:
    def check(conn):
        try:
            conn.networkLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False
    return check


def _pool_exists(name: str) -> Callable[[libvirt.virConnect], bool]:
    def check(conn):
        try:
            conn.storagePoolLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False
    return check


def _volume_exists(pool: str, name: str) -> Callable[[libvirt.virConnect], bool]:
    def check(conn):
        try:
            conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False
    return check


def _remove_network(name: str) -> Callable[[libvirt.virConnect], None]:
    def clean(conn):
        for net in conn.listAllNetworks():
            if net.name() == name:
                if net.isActive():
                    net.destroy()
                if net.isPersistent():
                    net.undefine()
    return clean


def _remove_pool(name: str) -> Callable[[libvirt.virConnect], None]:
    def clean(conn):
        for pool in conn.listAllStoragePools():
            if pool.name() == name:
                if pool.isActive():
                    pool.destroy()
                try:
                    pool.delete(0)
                except libvirt.libvirtError:
                    pass  # never built
                pool.undefine()
    return clean


def _remove_vm_and_disk(name: str, pool: str, volume: str) -> Callable[[libvirt.virConnect], None]:
    def clean(conn):
        for dom in conn.listAllDomains():
            if dom.name() == name:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        disks = conn.storagePoolLookupByName(pool)
        when_pool_free(lambda: disks.refresh(0))  # a killed client's volume may still be in the making
        for vol in disks.listAllVolumes():
            if vol.name() == volume:
                when_pool_free(lambda: vol.delete(0))
    return clean


def _disk_pool(conn: _Conn) -> None:
    if not _pool_exists(DISK_POOL)(conn.get()):
        made = _run(conn.uri, ["pool", "create", DISK_POOL, "--target", f"/var/lib/libvirt/{DISK_POOL}", "--mode", "0711"])
        assert made.returncode == 0, made.stderr

NET = Scenario("net create", ["net", "create", "cvnet", "--subnet", "10.77.0.0/24"],
               _network_exists("cvnet"), _remove_network("cvnet"))
POOL = Scenario("pool create", ["pool", "create", "cvpool", "--target", "/var/lib/libvirt/cvpool"],
                _pool_exists("cvpool"), _remove_pool("cvpool"))
VM = Scenario("vm create --new-disk", ["vm", "create", "cvvm", "--memory", "64M", "--new-disk", f"{DISK_POOL}:16M"],
              _volume_exists(DISK_POOL, "cvvm-vda.qcow2"), _remove_vm_and_disk("cvvm", DISK_POOL, "cvvm-vda.qcow2"),
              prepare=_disk_pool)

MiB = 1024 * 1024


def _fresh_volume(pool: str, name: str, capacity: int) -> Callable[[libvirt.virConnect], None]:
    """The volume deleted and made again empty (sparse): the state before an upload."""
    def clean(conn):
        disks = conn.storagePoolLookupByName(pool)
        when_pool_free(lambda: disks.refresh(0))
        for vol in disks.listAllVolumes():
            if vol.name() == name:
                when_pool_free(lambda: vol.delete(0))  # a killed upload's job may still hold it
        xml = f"<volume><name>{name}</name><capacity>{capacity}</capacity><allocation>0</allocation></volume>"
        disks.createXML(xml, 0)
    return clean


def _allocated(pool: str, name: str) -> Callable[[libvirt.virConnect], bool]:
    def check(conn):
        try:
            return conn.storagePoolLookupByName(pool).storageVolLookupByName(name).info()[2] > 0
        except libvirt.libvirtError:
            return False
    return check


def _upload_scenario(folder: Path) -> Scenario:
    """A 1 GiB image with 256 MiB of data in four places, uploaded to a 1 GiB volume: a kill
    midway used to leave the volume's file cut short at the stream's position (112-153 MiB), and
    the run again refused it as too small."""
    image = folder / "image.raw"
    with open(image, "wb") as out:
        out.truncate(1024 * MiB)
        for i in range(4):
            out.seek(i * 256 * MiB + i * MiB)
            out.write(os.urandom(64 * MiB))
    fresh = _fresh_volume(DISK_POOL, "cvup", 1024 * MiB)

    def prepare(conn):
        _disk_pool(conn)
        fresh(conn.get())
    return Scenario("vol upload", ["vol", "upload", f"{DISK_POOL}/cvup", str(image)], _allocated(DISK_POOL, "cvup"),
                    fresh, prepare=prepare)


def _remove_vm_pool_and_network(vm: str, pool_name: str, network: str) -> Callable[[libvirt.virConnect], None]:
    """A VM, a pool with every volume in it (and its directory), and a network, gone."""
    def clean(conn):
        _remove_vm_and_disk(vm, DISK_POOL, "none")(conn)
        for pool in conn.listAllStoragePools():
            if pool.name() == pool_name and pool.isActive():
                when_pool_free(lambda: pool.refresh(0))
                for vol in pool.listAllVolumes():
                    when_pool_free(lambda: vol.delete(0))
        _remove_pool(pool_name)(conn)
        _remove_network(network)(conn)
    return clean


_remove_backed_up = _remove_vm_pool_and_network("cvbkvm", "cvbk", "cvbknet")


def _restore_scenario(folder: Path) -> Scenario:
    """A backup (a .tar.gz, with the data of a volume: 64 MiB in two places) of a pool with two
    volumes, a network and a VM using them, restored after they were removed: a kill midway used
    to leave objects the run again refused ("already exist and differ") and a scratch folder."""
    archive = folder / "host.tar.gz"

    def prepare(conn):
        _disk_pool(conn)
        image = folder / "data.raw"
        with open(image, "wb") as out:
            out.truncate(256 * MiB)
            for offset in (8, 128):
                out.seek(offset * MiB)
                out.write(os.urandom(32 * MiB))
        for argv in (["pool", "create", "cvbk", "--target", "/var/lib/libvirt/cvbk", "--mode", "0711"],
                     ["vol", "create", "cvbk", "data", "--capacity", "256M"],
                     ["vol", "create", "cvbk", "scratch.qcow2", "--capacity", "64M", "--format", "qcow2"],
                     ["vol", "upload", "cvbk/data", str(image)],
                     ["net", "create", "cvbknet", "--subnet", "10.79.0.0/24"],
                     ["vm", "create", "cvbkvm", "--memory", "64M", "--disk", "cvbk/data", "--disk", "cvbk/scratch.qcow2",
                      "--network", "cvbknet"],
                     ["backup", "create", "-o", str(archive), "--with-data", "cvbk/data"]):
            made = _run(conn.uri, argv)
            assert made.returncode == 0, (argv, made.stderr)
        _remove_backed_up(conn.get())
    return Scenario("backup restore", ["backup", "restore", str(archive)], _pool_exists("cvbk"), _remove_backed_up,
                    prepare=prepare)


SCENARIOS = {"vol upload": _upload_scenario, "backup restore": _restore_scenario}


@pytest.mark.parametrize("scenario", [NET, POOL, VM, *SCENARIOS], ids=lambda s: getattr(s, "name", s))
def test_a_killed_command_run_again_finishes_the_job(conn, scenario, tmp_path):
    if isinstance(scenario, str):
        scenario = SCENARIOS[scenario](tmp_path)
    converge_after_kills(conn, scenario)


# -- a daemon restarted midway --------------------------------------------------------------------
SPEC = """\
pools:
  - name: cvspec
    target: /var/lib/libvirt/cvspec
    mode: '0711'
    volumes:
      - name: cvspec-a
        capacity: 16M
      - name: cvspec-b
        capacity: 16M
        format: qcow2
networks:
  - name: cvspecnet
    subnet: 10.78.0.0/24
vms:
  - name: cvspecvm
    memory: 64M
    disks:
      - volume: cvspec/cvspec-a
    nics:
      - network: cvspecnet
"""


_remove_spec_objects = _remove_vm_pool_and_network("cvspecvm", "cvspec", "cvspecnet")


def _spec_scenario(folder: Path) -> Scenario:
    spec = folder / "host.yaml"
    spec.write_text(SPEC)
    return Scenario("apply", ["apply", "-f", str(spec), "--yes"], _pool_exists("cvspec"), _remove_spec_objects,
                    prepare=_disk_pool)


def converge_after_restarts(lab: Lab, conn: _Conn, scenario: Scenario) -> dict:
    """RESTARTS rounds: the command's libvirtd restarted a little after its first change. The
    command ends with one sentence or success (never a traceback, never "nothing was kept" while
    something is), and the same command run again reaches the intended state."""
    scenario.prepare(conn)
    before = comparable(conn.get())
    clean = _run(conn.uri, scenario.argv)
    assert clean.returncode == 0, clean.stderr
    wanted = comparable(conn.get())
    scenario.clean(conn.get())
    figures = {"restarts": 0, "converged": 0, "failed_midway": 0}
    problems = []
    for round_ in range(RESTARTS):
        proc = _start(conn.uri, scenario.argv)
        while proc.poll() is None and not scenario.first_change(conn.get()):
            time.sleep(0.002)
        time.sleep(0.03 * round_)
        lab.restart_libvirtd()
        conn.reopen()
        _out, err = proc.communicate(timeout=600)
        figures["restarts"] += 1
        left = comparable(conn.get())
        if proc.returncode != 0:
            figures["failed_midway"] += 1
            print(f"  {scenario.name}, daemon restarted midway: {err.strip()[-400:]}")
            if "Traceback" in err or len(err.strip().splitlines()) != 1:
                problems.append(("not one sentence", err[-1500:]))
            # (apply's "nothing was kept" is of its failed step; it counts the steps done before it)
            if "nothing was kept" in err and "were done before it" not in err and left != before:
                problems.append(("said nothing was kept, but", sorted(set(left.items()) - set(before.items()))))
        again = _run(conn.uri, scenario.argv)
        now = comparable(conn.get())
        if (again.returncode == 0 or "already" in again.stderr) and now == wanted:
            figures["converged"] += 1
        else:
            problems.append(("run again", again.returncode, again.stderr[-1500:], sorted(set(now.items()) ^ set(wanted.items()))))
        scenario.clean(conn.get())
    print(f"{scenario.name} (daemon restarted): {json.dumps(figures)}")
    assert not problems, problems
    return figures


@pytest.mark.parametrize("scenario", [NET, POOL, VM, "apply"], ids=lambda s: getattr(s, "name", s))
def test_a_daemon_restart_midway_is_one_sentence_and_a_run_again_finishes(fault_lab, conn, scenario, tmp_path):
    if scenario == "apply":
        scenario = _spec_scenario(tmp_path)
    converge_after_restarts(fault_lab, conn, scenario)
