"""One spec for a fleet of three lab hosts (hosts: NAME: ...): plan shows each host's changes, apply
makes them on every host, plan then says no changes, `export -H` writes the fleet back. A mistake on
one host, or a host that does not answer, fails plan and apply before anything changes anywhere."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import libvirt
import pytest
import yaml

from tests.helpers import fresh_labs, host_state
from virtops.lab.labhost import Lab

TOKEN = str(os.getpid() % 100000)
NAMES = [f"pytest-fs{i}-{TOKEN}" for i in range(3)]
HOSTS = [f"lab:{name}" for name in NAMES]
SELECT = ",".join(HOSTS)


@pytest.fixture(scope="module")
def labs():
    with fresh_labs(NAMES) as labs:
        yield labs


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LIBVIRT_DEFAULT_URI": ""}
    return subprocess.run([sys.executable, "-m", "virtops", *args], capture_output=True, text=True, timeout=300, env=env)


def states(labs: list[Lab]) -> list[dict[str, str]]:
    result = []
    for lab in labs:
        conn = libvirt.open(lab.uri)
        try:
            result.append(host_state(conn))
        finally:
            conn.close()
    return result


def network(name: str, third: int) -> dict:
    return {"name": name, "subnet": f"10.79.{third}.0/24", "dhcp": f"10.79.{third}.100-10.79.{third}.200"}


def fleet_file(tmp_path, hosts: dict) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"hosts": hosts}))
    return str(path)


def test_a_fleet_spec_is_planned_applied_and_exported_host_by_host(labs, tmp_path):
    spec = fleet_file(tmp_path, {
        HOSTS[0]: {"networks": [network("front", 1)]},
        HOSTS[1]: {"networks": [network("back", 2)],
                   "pools": [{"name": "images", "type": "dir", "target": "/var/lib/libvirt/images-fs"}]},
        HOSTS[2]: {},
    })
    planned = run("plan", "-f", spec, "--json")
    assert planned.returncode == 0, planned.stderr
    plans = json.loads(planned.stdout)
    assert plans["errors"] == {}
    assert [(a["kind"], a["name"]) for a in plans["hosts"][HOSTS[0]]["actions"]] == [("network", "front")]
    assert sorted((a["kind"], a["name"]) for a in plans["hosts"][HOSTS[1]]["actions"]) == [
        ("network", "back"), ("pool", "images")]
    assert plans["hosts"][HOSTS[2]]["actions"] == []

    applied = run("apply", "-f", spec)
    assert applied.returncode == 0, applied.stderr
    assert f"done: {HOSTS[0]}: create network front" in applied.stdout
    assert f"host {HOSTS[1]}: applied 2 step(s)." in applied.stdout
    after = states(labs)
    assert "net/front" in after[0] and "net/back" not in after[0]
    assert "net/back" in after[1] and "pool/images" in after[1]

    again = run("plan", "-f", spec)
    assert again.returncode == 0 and again.stdout.count("No changes: the host matches the spec.") == 3, again.stdout

    exported = run("-H", SELECT, "export", "-o", str(tmp_path / "exported.yaml"))
    assert exported.returncode == 0, exported.stderr
    back = yaml.safe_load((tmp_path / "exported.yaml").read_text())
    assert list(back["hosts"]) == HOSTS
    assert {n["name"] for n in back["hosts"][HOSTS[1]]["networks"]} == {"default", "back"}
    clean = run("plan", "-f", str(tmp_path / "exported.yaml"))
    assert clean.returncode == 0 and clean.stdout.count("No changes") == 3, clean.stdout

    # -H picks some hosts of a fleet spec; one host's spec under -H goes to every selected host.
    one = run("-H", HOSTS[2], "plan", "-f", spec)
    assert one.returncode == 0 and one.stdout.startswith(f"host {HOSTS[2]}:\nNo changes"), one.stdout
    shared = tmp_path / "shared.yaml"
    shared.write_text(yaml.safe_dump({"networks": [network("shared", 9)]}))
    both = run("-H", f"{HOSTS[0]},{HOSTS[2]}", "apply", "-f", str(shared))
    assert both.returncode == 0, both.stderr
    now = states(labs)
    assert "net/shared" in now[0] and "net/shared" in now[2] and "net/shared" not in now[1]


def test_one_host_refused_or_unreachable_changes_nothing_anywhere(labs, tmp_path):
    before = states(labs)
    overlapping = fleet_file(tmp_path, {
        HOSTS[0]: {"networks": [network("new-one", 21)]},
        HOSTS[1]: {"networks": [{"name": "clash", "subnet": "192.168.122.0/25"}]},  # the default network's
    })
    for command in ("plan", "apply"):
        result = run(command, "-f", overlapping)
        assert result.returncode == 1, result.stdout
        errors = result.stderr.splitlines()
        assert errors[0].startswith(f"error: host {HOSTS[1]}: ") and "hosts." in errors[0]
        assert f"hosts.{HOSTS[1]}.networks[0].subnet: 192.168.122.0/25 overlaps" in errors[0]
        assert errors[-1] == "error: nothing was changed on any host."
    assert states(labs) == before

    absent = f"lab:pytest-fs9-{TOKEN}"  # no such lab runs
    unreachable = fleet_file(tmp_path, {HOSTS[0]: {"networks": [network("new-two", 22)]}, absent: {}})
    result = run("apply", "-f", unreachable)
    assert result.returncode == 1
    assert f"error: host {absent}: No libvirt daemon answers" in result.stderr
    assert states(labs) == before

    # Mistakes in the file itself are placed at their line, under the host's key.
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"hosts:\n  {HOSTS[0]}:\n    networks:\n      - name: x\n        subnett: 10.0.0.0/24\n")
    result = run("plan", "-f", str(typo))
    assert result.returncode == 1
    assert f"typo.yaml:5: hosts.{HOSTS[0]}.networks[0].subnett: is not a field here" in result.stderr
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(f"hosts:\n  {HOSTS[0]}: {{}}\nnetworks: []\n")
    result = run("plan", "-f", str(mixed))
    assert result.returncode == 1 and "mixed.yaml:3: networks: is not a field of a fleet spec" in result.stderr
    with_c = run("-c", HOSTS[0], "plan", "-f", overlapping)
    assert with_c.returncode == 2 and "names its hosts (hosts:)" in with_c.stderr
