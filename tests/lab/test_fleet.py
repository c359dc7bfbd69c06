"""A fleet of three lab hosts on one segment, registered with a tag: fleet actions on VMs, then
-H listings while one daemon is down and one is hung (SIGSTOP by pid): the answering host's rows,
one sentence per other host, exit code 1, in bounded time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import libvirt
import pytest

from tests.helpers import define_small_domain
from virtops.lab.labhost import Lab

TOKEN = str(os.getpid() % 100000)
SEGMENT = f"fl-{TOKEN}"
NAMES = [f"pytest-fl{i}-{TOKEN}" for i in range(3)]
REGISTERED = ["one", "two", "three"]
# connect timeout (5 s) or keepalive (about 6 s), with room for a loaded machine; never the deadline (120 s)
BOUND_S = 30


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    labs = [Lab(name) for name in NAMES]
    hosts_file = tmp_path_factory.mktemp("fleet") / "hosts.yaml"
    env = {**os.environ, "VIRTOPS_HOSTS": str(hosts_file), "VIRTOPS_SYSTEM_HOSTS": "", "LIBVIRT_DEFAULT_URI": ""}
    try:
        for lab in labs:
            if lab.exists():
                lab.down()
            lab.up(segment=SEGMENT)
        for name, lab in zip(REGISTERED, labs):
            result = run(env, "host", "add", name, f"lab:{lab.name}", "--tag", "fleet")
            assert result.returncode == 0, result.stderr
        yield labs, env
    finally:
        for lab in labs:
            pid = lab._pid("libvirtd")
            if pid:
                try:
                    os.kill(pid, signal.SIGCONT)  # a daemon this test stopped comes back before going down
                except ProcessLookupError:
                    pass
            lab.down()


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virtops", *args], capture_output=True, text=True, timeout=300, env=env)


def define(lab: Lab, name: str) -> None:
    define_small_domain(lab.uri, name)


def state(lab: Lab, name: str) -> bool:
    conn = libvirt.open(lab.uri)
    try:
        return bool(conn.lookupByName(name).isActive())
    finally:
        conn.close()


def test_the_fleet_lists_every_host_with_its_name(fleet):
    labs, env = fleet
    define(labs[0], "alpha")
    define(labs[1], "beta")
    result = run(env, "-H", "tag:fleet", "vm", "list", "--all", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(row["host"], row["name"]) for row in json.loads(result.stdout)}
    assert {("one", "alpha"), ("two", "beta")} <= rows and not any(host == "three" for host, _ in rows)
    table = run(env, "-H", "one,two,three", "net", "list")
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and lines[0].split()[:2] == ["Host", "Name"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["one", "three", "two"]  # each lab's default network
    infos = json.loads(run(env, "-H", f"lab:{labs[2].name},one", "host", "info", "--json").stdout)
    assert [row["host"] for row in infos] == [f"lab:{labs[2].name}", "one"]
    listed = {row["name"]: row for row in json.loads(run(env, "host", "list", "--json").stdout)}
    assert listed["one"]["reachable"] and listed["one"]["vms"] >= 1 and listed["one"]["tags"] == ["fleet"]
    assert f"lab:{labs[0].name}" in listed  # running labs appear without being added


def test_fleet_actions_report_per_host_and_vm(fleet):
    labs, env = fleet
    define(labs[0], "gamma")
    define(labs[2], "delta")
    started = run(env, "-H", "tag:fleet", "vm", "start", "gamma", "delta", "nowhere")
    assert started.returncode == 1
    assert sorted(started.stdout.splitlines()) == ["one: VM gamma started.", "three: VM delta started."]
    assert started.stderr == "error: VM nowhere is on none of the selected hosts that answered (one, two, three).\n"
    assert state(labs[0], "gamma") and state(labs[2], "delta")
    again = run(env, "-H", "tag:fleet", "vm", "start", "gamma")
    assert again.returncode == 1 and again.stderr == "error: host one: vm: gamma is already running.\n"
    shutdown = run(env, "-H", "tag:fleet", "vm", "shutdown", "gamma", "delta", "--json")
    assert shutdown.returncode == 0, shutdown.stderr
    assert sorted((o["host"], o["vm"], o["ok"]) for o in json.loads(shutdown.stdout)) == [
        ("one", "gamma", True), ("three", "delta", True)]
    destroyed = run(env, "-H", "tag:fleet", "vm", "destroy", "gamma", "delta")
    assert destroyed.returncode == 0, destroyed.stderr
    assert not state(labs[0], "gamma") and not state(labs[2], "delta")


def test_a_down_and_a_hung_host_do_not_hold_up_the_others(fleet):
    labs, env = fleet
    labs[2].down()  # "three": no daemon at all
    hung = labs[1]._pid("libvirtd")  # "two": the daemon accepts connections and never answers
    os.kill(hung, signal.SIGSTOP)
    try:
        for args in (["vm", "list", "--all", "--json"], ["net", "list", "--json"], ["pool", "list", "--json"],
                     ["host", "info", "--json"]):
            started = time.monotonic()
            result = run(env, "-H", "tag:fleet", *args)
            took = time.monotonic() - started
            assert result.returncode == 1, (args, result.stderr)
            assert took < BOUND_S, (args, took)
            rows = json.loads(result.stdout)
            assert {row["host"] for row in rows} == ({"one"} if args[0] != "pool" else set()), args  # a lab has no pool
            errors = result.stderr.splitlines()
            assert len(errors) == 2, errors
            two = next(line for line in errors if line.startswith("error: host two: "))
            three = next(line for line in errors if line.startswith("error: host three: "))
            assert "did not answer within" in two and "No libvirt daemon answers" in three
        plain = run(env, "-H", "tag:fleet", "vm", "list", "--all")
        assert plain.returncode == 1 and {line.split()[0] for line in plain.stdout.splitlines()[1:]} == {"one"}
        # An action reaches the host that answers; the hung one is named, the VM on it is not found.
        action = run(env, "-H", "tag:fleet", "vm", "start", "alpha", "beta")
        assert action.returncode == 1 and action.stdout == "one: VM alpha started.\n"
        assert "VM beta is on none of the selected hosts that answered (one)" in action.stderr
        assert "error: host two: " in action.stderr
        run(env, "-c", "one", "vm", "destroy", "alpha")
    finally:
        os.kill(hung, signal.SIGCONT)
    # Back from SIGSTOP, the host answers again.
    assert run(env, "-c", "two", "vm", "list", "--all").returncode == 0
