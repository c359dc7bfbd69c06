"""`virtops -H ... serve` over three lab hosts, through its REST API: GET /api/hosts, the one-host
API under /api/hosts/NAME/... reaching that host only, the fleet-wide lists in natural order,
events tagged by host, and a host whose daemon stops: refused at once, the others answering,
back by itself when the daemon returns."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import libvirt
import pytest

from tests.conftest import WEB_PASSWORD
from tests.helpers import define_small_domain, fresh_labs, host_state, serve_process
from virtops.lab.labhost import Lab
from virtops.lab.proc import wait_for_exit

TOKEN = str(os.getpid() % 100000)
NAMES = [f"pytest-wf{i}-{TOKEN}" for i in range(3)]
HOSTS = [f"lab:{name}" for name in NAMES]
# the watcher asks every 2 s; a stopped daemon refuses at once, a restarted one is found on the next ask
BOUND_S = 30


@pytest.fixture(scope="module")
def labs():
    with fresh_labs(NAMES) as labs:
        yield labs


@pytest.fixture(scope="module")
def api(labs, tmp_path_factory):
    password_file = tmp_path_factory.mktemp("fleetweb") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    with serve_process(f"-H {','.join(HOSTS)}", password_file) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            login = client.post("/login", json={"password": WEB_PASSWORD})
            assert login.status_code == 200
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            yield client


def connect(lab: Lab) -> libvirt.virConnect:
    return libvirt.open(lab.uri)


def define(lab: Lab, name: str) -> None:
    define_small_domain(lab.uri, name)


def until(predicate, what: str):
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {BOUND_S} s: {what}")


def status(api, name: str) -> dict:
    return next(row for row in api.get("/api/hosts").json() if row["name"] == name)


def test_api_hosts_lists_every_served_host_with_its_figures(api, labs):
    define(labs[1], "counted")
    rows = until(lambda: (r := api.get("/api/hosts").json()) and all(h["reachable"] for h in r)
                 and r[1]["vms"] == 1 and r, "every host answering, lab 1 with its VM")
    assert [row["name"] for row in rows] == HOSTS
    for row, lab in zip(rows, labs):
        conn = connect(lab)
        try:
            assert row["vms"] == len(conn.listAllDomains()) and row["vms_running"] == 0
            assert row["memory_bytes"] == conn.getInfo()[1] * 1024**2
        finally:
            conn.close()
        assert row["reason"] is None and row["problems"] == [] and 0 < row["memory_used_bytes"] < row["memory_bytes"]
        assert row["cpu_percent"] is not None and row["libvirt_version"]


def test_each_host_has_the_one_host_api_under_its_name(api, labs):
    before = [host_state(connect(lab)) for lab in labs[:2]]
    made = api.post(f"/api/hosts/{HOSTS[2]}/networks", json={"name": "only-c", "subnet": "192.168.201.0/24"})
    assert made.status_code == 201, made.text
    conn = connect(labs[2])
    try:
        assert conn.networkLookupByName("only-c").isActive()
    finally:
        conn.close()
    assert [host_state(connect(lab)) for lab in labs[:2]] == before  # the other hosts untouched
    names = {host: {n["name"] for n in api.get(f"/api/hosts/{host}/networks").json()} for host in HOSTS}
    assert names == {HOSTS[0]: {"default"}, HOSTS[1]: {"default"}, HOSTS[2]: {"default", "only-c"}}
    assert {n["name"] for n in api.get("/api/networks").json()} == {"default"}  # /api/...: the first host
    assert api.get(f"/api/hosts/{HOSTS[2]}/networks/only-c").json()["subnet"] == "192.168.201.0/24"
    refused = api.post(f"/api/hosts/{HOSTS[1]}/networks", json={"name": "again", "subnet": "192.168.201.0/33"})
    assert refused.status_code == 422 and refused.json()["field"] == "subnet"
    assert api.delete(f"/api/hosts/{HOSTS[2]}/networks/only-c").status_code == 200


def test_an_unknown_host_is_one_sentence(api):
    answer = api.get("/api/hosts/lab:nosuch/vms")
    assert answer.status_code == 404
    assert answer.json() == {"error": "host: lab:nosuch is not served here; GET /api/hosts lists the hosts "
                                      "this server serves.", "field": None}


def test_fleet_lists_hold_every_hosts_rows_in_natural_order(api, labs):
    for lab, name in zip(labs, ("n10", "n2", "n1")):
        define(lab, name)
    define(labs[0], "n2")
    rows = [(row["name"], row["host"]) for row in api.get("/api/fleet/vms").json()["rows"] if row["name"].startswith("n")]
    assert rows == [("n1", HOSTS[2]), ("n2", HOSTS[0]), ("n2", HOSTS[1]), ("n10", HOSTS[0])]
    pools = api.get("/api/fleet/networks").json()
    assert [(row["name"], row["host"]) for row in pools["rows"]] == [("default", host) for host in HOSTS]
    assert pools["failures"] == []


class Events:
    """The event stream of one path, read in a thread, until `done(received)`."""

    def __init__(self, api, path: str, done):
        self.received: list[dict] = []
        self._thread = threading.Thread(target=self._listen, args=(api, path, done), daemon=True)
        self._opened = threading.Event()
        self._thread.start()
        assert self._opened.wait(10), "the event stream did not open"

    def _listen(self, api, path, done) -> None:
        with api.stream("GET", path, params={"heartbeat": 1}) as stream:
            self._opened.set()
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    self.received.append(json.loads(line.removeprefix("data: ")))
                    if done(self.received):
                        return

    def wait(self) -> None:
        self._thread.join(BOUND_S)
        assert not self._thread.is_alive(), f"events seen: {self.received}"


def test_every_hosts_events_flow_into_one_stream_tagged_by_host(api, labs):
    define(labs[1], "ev-b")
    define(labs[2], "ev-c")
    wanted = {(HOSTS[1], "ev-b"), (HOSTS[2], "ev-c")}
    everything = Events(api, "/api/events", lambda seen: wanted <= {(e.get("host"), e["name"]) for e in seen})
    only_c = Events(api, f"/api/hosts/{HOSTS[2]}/events", lambda seen: any(e["name"] == "ev-c" for e in seen))
    time.sleep(0.5)  # both streams subscribed
    for lab, name in ((labs[1], "ev-b"), (labs[2], "ev-c")):
        conn = connect(lab)
        try:
            conn.lookupByName(name).undefine()
        finally:
            conn.close()
    everything.wait()
    only_c.wait()
    assert {"kind": "domain", "name": "ev-b", "event": "undefined", "host": HOSTS[1]} in everything.received
    assert {e["host"] for e in only_c.received} == {HOSTS[2]}


def test_a_host_whose_daemon_stops_is_refused_at_once_and_comes_back(api, labs):
    lab = labs[2]
    pid = lab._pid("libvirtd")
    os.kill(pid, signal.SIGTERM)  # the lab's own daemon, by pid
    wait_for_exit(pid, 20)
    try:
        down = until(lambda: (row := status(api, HOSTS[2])) and not row["reachable"] and row, "the host greyed out")
        assert "No libvirt daemon answers at" in down["reason"] and down["vms"] is None
        started = time.monotonic()
        refused = api.get(f"/api/hosts/{HOSTS[2]}/vms")
        answered = api.get(f"/api/hosts/{HOSTS[0]}/vms")
        assert time.monotonic() - started < 2  # neither waits for the host that is away
        assert refused.status_code == 503 and refused.json()["error"].startswith(f"host {HOSTS[2]}: No libvirt daemon")
        assert answered.status_code == 200
        listing = api.get("/api/fleet/vms").json()
        assert {row["host"] for row in listing["rows"]} == set(HOSTS[:2])
        assert [failure["host"] for failure in listing["failures"]] == [HOSTS[2]]
        assert [row["reachable"] for row in api.get("/api/hosts").json()] == [True, True, False]
    finally:
        lab.restart_libvirtd()
    until(lambda: status(api, HOSTS[2])["reachable"], "the host back after its daemon restarted")
    assert api.get(f"/api/hosts/{HOSTS[2]}/vms").status_code == 200


def test_a_hung_host_is_refused_at_once_within_its_keepalive_window_and_comes_back(api, labs):
    pid = labs[1]._pid("libvirtd")
    os.kill(pid, signal.SIGSTOP)  # the lab's own daemon, by pid: it accepts connections and never answers
    try:
        # first the call in flight is cut by keepalive, then the watcher's new connect goes unanswered
        until(lambda: (status(api, HOSTS[1])["reason"] or "").startswith("did not answer within 6 s"),
              "the hung host marked")
        started = time.monotonic()
        refused = api.get(f"/api/hosts/{HOSTS[1]}/networks")
        answered = [api.get(f"/api/hosts/{host}/networks") for host in (HOSTS[0], HOSTS[2])]
        listing = api.get("/api/fleet/networks").json()
        assert time.monotonic() - started < 2
        assert refused.status_code == 503 and refused.json()["error"].startswith(f"host {HOSTS[1]}: did not answer")
        assert [answer.status_code for answer in answered] == [200, 200]
        assert [row["host"] for row in listing["rows"]] == [HOSTS[0], HOSTS[2]]
        assert [failure["host"] for failure in listing["failures"]] == [HOSTS[1]]
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: status(api, HOSTS[1])["reachable"], "the host back after SIGCONT")
    assert api.get(f"/api/hosts/{HOSTS[1]}/networks").status_code == 200
