"""Host-wide facts hold under concurrency (base/hostlock.py): operations that check a fact of the
whole host and then act on it (a MAC nobody else uses, a free disk target, a subnet no other
network overlaps, a volume no VM uses) hold the host's lock across both, in every face, so two
requests at once can never both pass the check."""
from __future__ import annotations

import subprocess
import sys

import libvirt
import pytest

from tests.helpers import cli_ok
from virtops.xmlmodels import doc as X

ROUNDS = 10
NET, VMS = "race-net", ("race-a", "race-b")


@pytest.fixture(scope="module")
def two_vms(lab):
    cli_ok(lab.uri, "net", "create", NET, "--subnet", "10.81.0.0/24")
    for vm in VMS:
        cli_ok(lab.uri, "vm", "create", vm, "--memory", "64M")
    conn = libvirt.open(lab.uri)
    try:
        yield conn
    finally:
        for vm in VMS:
            conn.lookupByName(vm).undefine()
        net = conn.networkLookupByName(NET)
        net.destroy()
        net.undefine()
        conn.close()


def _macs(conn: libvirt.virConnect, vm: str) -> list[str]:
    root = X.parse(conn.lookupByName(vm).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return [mac.get("address") for mac in root.findall("devices/interface/mac")]


def _at_once(uri: str, argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """The commands as processes started together, each waited for."""
    procs = [subprocess.Popen([sys.executable, "-m", "virtops", "-c", uri, *argv], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv in argvs]
    results = []
    for argv, proc in zip(argvs, procs):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return results


def test_two_attach_nic_with_one_mac_on_two_vms_at_once_exactly_one_wins(lab, two_vms):
    conn = two_vms
    for round_ in range(ROUNDS):
        mac = f"52:54:00:81:00:{round_:02x}"
        results = _at_once(lab.uri, [["vm", "attach-nic", vm, "--network", NET, "--mac", mac] for vm in VMS])
        winners = [vm for vm, result in zip(VMS, results) if result.returncode == 0]
        holders = [vm for vm in VMS if mac in _macs(conn, vm)]
        assert len(winners) == 1 and holders == winners, (round_, [(r.returncode, r.stderr) for r in results])
        (loser,) = [result for result in results if result.returncode != 0]
        assert loser.returncode == 1 and f"{mac} is already used by" in loser.stderr, loser.stderr
        assert len(loser.stderr.strip().splitlines()) == 1, loser.stderr
        cli_ok(lab.uri, "vm", "detach-nic", winners[0], mac)


# -- load: 20 REST clients and parallel CLI calls at once -----------------------------------------
CLIENTS, CLI_WORKERS, ITERATIONS = 20, 4, 4
LOAD_POOL = "race-pool"
SUBNETS = [f"10.90.{n}.0/24" for n in range(6)]  # fewer than the workers: overlaps are refused
MACS = [f"52:54:00:90:00:{n:02x}" for n in range(4)]  # likewise: one MAC on two VMs is refused
LOAD_BOUND_S = 420


@pytest.fixture(scope="module")
def load_host(lab, two_vms, tmp_path_factory):
    from tests.conftest import WEB_PASSWORD
    from tests.helpers import serve_process

    cli_ok(lab.uri, "pool", "create", LOAD_POOL, "--target", f"/var/lib/libvirt/{LOAD_POOL}", "--mode", "0711")
    password_file = tmp_path_factory.mktemp("race-web") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    try:
        with serve_process(lab.uri, password_file) as base:
            yield base, WEB_PASSWORD
    finally:
        cli_ok(lab.uri, "pool", "delete", LOAD_POOL, "--with-volumes", "--force")


class _Watch:
    """Samples the host while the load runs: every MAC of every VM (no two alike), every VM's
    disk targets (no two alike), every network's subnet (no two overlapping)."""

    def __init__(self, uri: str):
        import threading

        self.conn = libvirt.open(uri)
        self.problems: list[str] = []
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._sample()
            self.stop.wait(0.1)
        self.conn.close()

    def _sample(self) -> None:
        import ipaddress

        from virtops.daemon.lookups import still_there

        doms = still_there(self.conn.listAllDomains(),
                           lambda d: X.parse(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
        macs = [mac.get("address") for root in doms for mac in root.findall("devices/interface/mac")]
        if len(macs) != len(set(macs)):
            self.problems.append(f"duplicate MACs: {sorted(macs)}")
        for root in doms:
            targets = [t.get("dev") for t in root.findall("devices/disk/target")]
            if len(targets) != len(set(targets)):
                self.problems.append(f"duplicate targets in {root.findtext('name')}: {targets}")
        nets = still_there(self.conn.listAllNetworks(), lambda n: X.parse(n.XMLDesc(0)))
        subnets = [ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('prefix') or ip.get('netmask')}").network
                   for root in nets for ip in root.findall("ip") if ip.get("family", "ipv4") == "ipv4" and ip.get("address")]
        for i, one in enumerate(subnets):
            for other in subnets[i + 1:]:
                if one.overlaps(other):
                    self.problems.append(f"overlapping subnets {one} and {other}")
        self.samples += 1


def _rest_worker(base: str, password: str, index: int, answers: list) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=300) as client:
        login = client.post("/login", json={"password": password})
        answers.append(("POST /login", login.status_code, ""))
        if login.status_code != 200:
            return
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]

        def call(method: str, path: str, **body):
            answer = client.request(method, path, **({"json": body} if body else {}))
            answers.append((f"{method} {path}", answer.status_code, answer.text[:300]))
            return answer

        for i in range(ITERATIONS):
            net = f"load-r{index}-{i}"
            if call("POST", "/api/networks", name=net, subnet=SUBNETS[(index + i) % len(SUBNETS)]).status_code == 201:
                call("GET", "/api/networks")
                call("DELETE", f"/api/networks/{net}")
            vol = f"r{index}-{i}"
            if call("POST", f"/api/pools/{LOAD_POOL}/volumes", name=vol, capacity="1M").status_code == 201:
                call("GET", f"/api/pools/{LOAD_POOL}/volumes")
                disk = call("POST", f"/api/vms/{VMS[0]}/disks", volume=f"{LOAD_POOL}/{vol}")
                if disk.status_code == 201:
                    call("DELETE", f"/api/vms/{VMS[0]}/disks/{disk.json()['target']}")
                call("DELETE", f"/api/pools/{LOAD_POOL}/volumes/{vol}")
            mac = MACS[(index + i) % len(MACS)]
            vm = VMS[(index + i) % 2]
            if call("POST", f"/api/vms/{vm}/nics", network=NET, mac=mac).status_code == 201:
                call("GET", "/api/vms")
                call("DELETE", f"/api/vms/{vm}/nics/{mac}")


def _cli_worker(uri: str, index: int, results: list) -> None:
    def run(*argv: str) -> int:
        done = subprocess.run([sys.executable, "-m", "virtops", "-c", uri, *argv], capture_output=True, text=True,
                              timeout=300)
        results.append((argv, done.returncode, done.stderr.strip()))
        return done.returncode

    for i in range(ITERATIONS):
        net = f"load-c{index}-{i}"
        if run("net", "create", net, "--subnet", SUBNETS[(index * 2 + i) % len(SUBNETS)]) == 0:
            run("net", "list")
            run("net", "delete", net)
        mac = MACS[(index + i + 1) % len(MACS)]
        vm = VMS[(index + i + 1) % 2]
        if run("vm", "attach-nic", vm, "--network", NET, "--mac", mac) == 0:
            run("vm", "detach-nic", vm, mac)


def test_twenty_rest_clients_and_parallel_cli_calls_keep_the_host_consistent(lab, load_host):
    import threading
    import time

    base, password = load_host
    answers: list = []
    cli_results: list = []
    watch = _Watch(lab.uri)
    watch.thread.start()
    workers = [threading.Thread(target=_rest_worker, args=(base, password, n, answers)) for n in range(CLIENTS)]
    workers += [threading.Thread(target=_cli_worker, args=(lab.uri, n, cli_results)) for n in range(CLI_WORKERS)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(LOAD_BOUND_S)
    took = time.monotonic() - started
    watch.stop.set()
    watch.thread.join(30)
    assert not any(worker.is_alive() for worker in workers), f"the load did not end within {LOAD_BOUND_S} s"
    server_errors = [a for a in answers if a[1] >= 500]
    assert not server_errors, server_errors[:10]
    refusals = [a for a in answers if 400 <= a[1] < 500]
    assert all(a[0].startswith("POST") for a in refusals), [a for a in refusals if not a[0].startswith("POST")][:10]
    assert not [r for r in cli_results if r[1] not in (0, 1) or "Traceback" in r[2] or len(r[2].splitlines()) > 1]
    # Only a check of a host-wide fact may refuse (an overlapping subnet, a MAC in use), in one sentence.
    assert not [r for r in cli_results if r[1] == 1 and r[0][:2] not in (("net", "create"), ("vm", "attach-nic"))]
    assert not watch.problems, watch.problems[:10]
    assert watch.samples > 10
    created = sum(1 for a in answers if a[1] == 201)
    print(f"load: {len(answers)} REST answers ({created} created, {len(refusals)} refused, 0 5xx), "
          f"{len(cli_results)} CLI calls, {watch.samples} samples of the host, {took:.0f} s")
    conn = libvirt.open(lab.uri)
    try:  # every worker removed what it made
        assert [n.name() for n in conn.listAllNetworks() if n.name().startswith("load-")] == []
        assert conn.storagePoolLookupByName(LOAD_POOL).listVolumes() == []
        assert [m for vm in VMS for m in _macs(conn, vm) if m in MACS] == []
    finally:
        conn.close()
