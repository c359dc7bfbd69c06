"""`vm migrate` between two real lab hosts on one segment (SCENARIO.md step 8): a running test guest
on the shared NFS pool moves live and keeps running (its uptime goes on, its disk data is intact);
a move over non-shared dir pools needs --copy-storage and then copies the disk; a stopped VM moves
offline; refused moves (a network the destination lacks, a name clash) leave both hosts' XML as it
was; Ctrl-C mid-move leaves the guest running on the source; `host evacuate` empties a host."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import cli_ok, host_state, network_element, run_cli
from virtops.host import Host
from virtops.lab.labhost import Lab
from virtops.testguest.image import kernel_cmdline, wait_for_report
from virtops.testguest.shell import guest_uptime, run_in_guest
from virtops.xmlmodels import doc as X

TOKEN = str(os.getpid() % 100000)
SEGMENT = f"mg-{TOKEN}"
MARK = "VIRTOPS-DATA-BEFORE-THE-MOVE"
KEPT_NETWORKS = ("default", "mig")  # made by the pair fixture
PINGS, PING_INTERVAL_S = 100, 0.2
MAX_OUTAGE_S = 2  # unanswered while the guest moves: 2 pings of ping's usual 1 s (0 lost in the runs here)


@pytest.fixture(scope="module")
def pair():
    labs = [Lab(f"pytest-mg{n}-{TOKEN}") for n in (1, 2)]
    try:
        for lab in labs:
            lab.up(segment=SEGMENT)
            cli_ok(lab.uri, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254",
                   "--source-path", "/nfs", "--target", "/var/lib/libvirt/nfs")
            cli_ok(lab.uri, "pool", "create", "local", "--target", "/var/lib/libvirt/local", "--mode", "0711")
            cli_ok(lab.uri, "net", "create", "mig", "--subnet", "10.77.0.0/24", "--mode", "isolated")
        yield labs
    finally:
        for lab in labs:
            lab.down()


@pytest.fixture(autouse=True)
def cleaned(pair):
    """Each test's VMs, volumes and extra networks go when it ends, passed or failed: one failure
    must not leave a VM on the shared pair that the next test then finds."""
    yield
    for lab in pair:
        remove_what_tests_made(lab)


def remove_what_tests_made(lab) -> None:
    import libvirt

    host = Host(lab.uri)
    try:
        for dom in host.conn.listAllDomains():
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
        for net in host.conn.listAllNetworks():
            if net.name() not in KEPT_NETWORKS:
                if net.isActive():
                    net.destroy()
                net.undefine()
        for pool in host.conn.listAllStoragePools():
            pool.refresh(0)
            for vol in pool.listAllVolumes():
                try:
                    vol.delete(0)
                except libvirt.libvirtError:
                    pass  # the shared nfs pool: the other lab removed it already
    finally:
        host.close()


@pytest.fixture(scope="module")
def boot(guest_image):
    return f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}"


def make_vm(lab, name: str, pool: str, boot: str, *extra: str, start: bool = True) -> None:
    cli_ok(lab.uri, "vol", "create", pool, name, "--capacity", "16M", "--format", "raw")
    cli_ok(lab.uri, "vm", "create", name, "--memory", "128M", "--vcpus", "1", "--disk", f"{pool}/{name}",
           "--boot", boot, *extra)
    if start:
        cli_ok(lab.uri, "vm", "start", name)


def on_guest(lab, name: str, ask, timeout_s: float = 90):
    """ask(console) on the guest's serial console, once its shell answers."""
    host = Host(lab.uri)
    try:
        console = host.vms.console(name, force=True)
        try:
            wait_for_report(console, lambda r: "vda" in r.disks, timeout_s)
            return ask(console)
        finally:
            console.close()
    finally:
        host.close()


def in_guest(lab, name: str, command: str, until: str, timeout_s: float = 90) -> str:
    """A shell command's output up to `until` (see virtops.testguest.shell.run_in_guest)."""
    return on_guest(lab, name, lambda console: run_in_guest(console, command, until, timeout_s), timeout_s)


def keep_dirtying_memory(lab, name: str) -> None:
    """Rewrite 40 MiB of the guest's memory with random bytes over and over, in the background (its
    root is its initramfs, in RAM): its dirty rate, tens of MiB/s, stays far above a 1 MiB/s move's,
    so that move never converges and is under way whenever a test acts on it, however fast the
    machine. Without this the guest's memory is mostly zero pages and even 1 MiB/s ends in seconds."""
    in_guest(lab, name, "(while :; do dd if=/dev/urandom of=/fill bs=1048576 count=40 2>/dev/null; done) "
                        ">/dev/null 2>&1 </dev/null & echo $! >/fill.pid; echo DIRTYING-$((1+1))", "DIRTYING-2")


def stop_dirtying_memory(lab, name: str) -> None:
    """End keep_dirtying_memory's loop: a move then converges (at a bandwidth above 1 MiB/s soon)."""
    in_guest(lab, name, "kill $(cat /fill.pid); wait; echo CALM-$((1+1))", "CALM-2")


def uptime(lab, name: str) -> float:
    return on_guest(lab, name, guest_uptime)


def domains(lab) -> dict[str, str]:
    return {vm["name"]: vm["state"] for vm in json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--json"))}


def test_a_running_guest_on_the_shared_nfs_pool_moves_live_and_runs_on(pair, boot):
    first, second = pair
    make_vm(first, "live", "nfs", boot, "--network", "mig")
    in_guest(first, "live", f"echo {MARK} | dd of=/dev/vda conv=fsync && echo WROTE-$((1+1))", "WROTE-2")
    before = uptime(first, "live")
    moved = json.loads(cli_ok(first.uri, "vm", "migrate", "live", "--to", f"lab:{second.name}", "--json"))
    assert moved["mode"] == "live" and moved["copied_disks"] == []
    assert [w for w in moved["warnings"] if "network mig" in w and "runs STP" in w]  # libvirt's default bridge
    assert "live" not in domains(first) and domains(second)["live"] == "running"
    after = uptime(second, "live")
    assert after > before  # the same guest, not a new boot
    text = in_guest(second, "live", "dd if=/dev/vda bs=64 count=1 2>/dev/null | head -c 28; echo =READ-$((1+1))", "=READ-2")
    assert MARK in text
    # The definition moved too (persistent there, gone here).
    assert "live" in cli_ok(second.uri, "vm", "list", "--all")
    cli_ok(second.uri, "vm", "destroy", "live")
    cli_ok(second.uri, "vm", "delete", "live", "--remove-storage")


def test_a_ping_through_the_guests_nic_loses_at_most_a_few_packets_during_a_live_move(pair, boot):
    """The network `sameip` has the same name, address and bridge MAC on both hosts (as a gateway
    replicated on every host is set up), so the guest's ping of its gateway goes on at the new host.
    Its bridge runs no STP: with STP on (libvirt's default) the destination's new port passes nothing
    for Linux's two forward delays of at least 2 s, and the ping lost 2-4 s here (docs/migration.md)."""
    first, second = pair
    for lab in pair:
        net = network_element("sameip", None, 79)
        net.find("bridge").set("stp", "off")
        X.sub(net, "mac", address="52:54:00:79:00:01")
        host = Host(lab.uri)
        try:
            host.conn.networkDefineXML(X.to_string(net)).create()
        finally:
            host.close()
    make_vm(first, "pinger", "nfs", boot, "--network", "sameip")
    lease = on_guest(first, "pinger", lambda console: wait_for_report(console, lambda r: r.nics and r.nics[0].ip))
    assert lease.nics[0].ip.startswith("10.79.0.")
    # 20 s of pings: they span the move, which takes a few seconds.
    in_guest(first, "pinger", f"ping -c {PINGS} -i {PING_INTERVAL_S} 10.79.0.1 > /tmp/ping.out 2>&1 & "
                              f"echo STARTED-$((1+1))", "STARTED-2")
    time.sleep(1)
    moved = json.loads(cli_ok(first.uri, "vm", "migrate", "pinger", "--to", f"lab:{second.name}", "--json"))
    assert moved["warnings"] == []  # no STP on sameip's bridge
    spanned = in_guest(second, "pinger", "echo RESULT=$(grep -q loss /tmp/ping.out && echo ENDED || echo SPANNED)",
                       r"RESULT=(SPANNED|ENDED)\b")
    assert "RESULT=SPANNED" in spanned  # the ping still ran when the move was over
    text = in_guest(second, "pinger", "while ! grep -q loss /tmp/ping.out; do sleep 1; done; "
                                      "cat /tmp/ping.out; echo PINGED-$((1+1))", "PINGED-2", timeout_s=120)
    answered = {int(n) for n in re.findall(r"seq=(\d+)", text)}
    lost = sorted(set(range(PINGS)) - answered)
    print(f"pings lost during the move: {len(lost)} of {PINGS}, {PING_INTERVAL_S} s apart: {lost}")
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) packets received", text).groups())
    assert sent == PINGS and sent - received == len(lost), text
    assert len(lost) * PING_INTERVAL_S <= MAX_OUTAGE_S, text


def test_refused_moves_leave_both_hosts_as_they_were(pair, boot):
    first, second = pair
    cli_ok(first.uri, "net", "create", "onlyhere", "--subnet", "10.78.0.0/24", "--mode", "isolated")
    make_vm(first, "picky", "nfs", boot, "--network", "onlyhere", start=False)
    make_vm(second, "twin", "local", boot, start=False)
    make_vm(first, "twin", "nfs", boot, start=False)
    hosts = [Host(lab.uri) for lab in pair]
    try:
        states = [host_state(host.conn) for host in hosts]
        missing = run_cli("vm", "migrate", "picky", "--to", f"lab:{second.name}", "--offline", uri=first.uri)
        assert missing.returncode == 1
        assert "has no network onlyhere" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
        clash = run_cli("vm", "migrate", "twin", "--to", f"lab:{second.name}", "--offline", uri=first.uri)
        assert clash.returncode == 1 and "has a VM named twin already" in clash.stderr, clash.stderr
        itself = run_cli("vm", "migrate", "twin", "--to", f"lab:{first.name}", uri=first.uri)
        assert itself.returncode == 1
        assert [host_state(host.conn) for host in hosts] == states
    finally:
        for host in hosts:
            host.close()
    for lab, name in ((first, "picky"), (first, "twin"), (second, "twin")):
        cli_ok(lab.uri, "vm", "delete", name, "--remove-storage")
    cli_ok(first.uri, "net", "delete", "onlyhere")


def test_copy_storage_moves_a_guest_between_dir_pools(pair, boot):
    first, second = pair
    make_vm(first, "copied", "local", boot)
    in_guest(first, "copied", f"echo {MARK} | dd of=/dev/vda conv=fsync && echo WROTE-$((1+1))", "WROTE-2")
    refused = run_cli("vm", "migrate", "copied", "--to", f"lab:{second.name}", uri=first.uri)
    assert refused.returncode == 1 and "--copy-storage" in refused.stderr, refused.stderr
    assert "copied" not in [v["name"] for v in json.loads(cli_ok(second.uri, "vol", "list", "local", "--json"))]
    moved = json.loads(cli_ok(first.uri, "vm", "migrate", "copied", "--to", f"lab:{second.name}",
                              "--copy-storage", "--json"))
    assert moved["copied_disks"] == ["vda"]
    assert domains(second)["copied"] == "running"
    text = in_guest(second, "copied", "dd if=/dev/vda bs=64 count=1 2>/dev/null | head -c 28; echo =READ-$((1+1))", "=READ-2")
    assert MARK in text
    cli_ok(second.uri, "vm", "destroy", "copied")
    cli_ok(second.uri, "vm", "delete", "copied", "--remove-storage")
    cli_ok(first.uri, "vol", "delete", "local/copied")  # the source's copy stays until the operator removes it


def test_a_stopped_vm_moves_offline(pair, boot):
    first, second = pair
    make_vm(first, "cold", "nfs", boot, start=False)
    moved = json.loads(cli_ok(first.uri, "vm", "migrate", "cold", "--to", f"lab:{second.name}", "--offline",
                              "--json"))
    assert moved["mode"] == "offline"
    assert "cold" not in domains(first) and domains(second)["cold"] == "shut off"
    cli_ok(second.uri, "vm", "start", "cold")  # the disk is there: it boots on the destination
    assert domains(second)["cold"] == "running"
    cli_ok(second.uri, "vm", "destroy", "cold")
    cli_ok(second.uri, "vm", "delete", "cold", "--remove-storage")


def _ctrl_c_as_at_a_terminal() -> None:
    """In the command's process before it runs: SIGINT as a terminal leaves it. A suite started in
    the background (`.ci/run &`, nohup) ignores SIGINT, its children inherit that, and Python then
    installs no Ctrl-C handler: the move would run on, as it rightly does for such a command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cancels_and_the_guest_runs_on_at_the_source(pair, boot):
    first, second = pair
    make_vm(first, "stay", "local", boot)
    keep_dirtying_memory(first, "stay")
    hosts = [Host(lab.uri) for lab in pair]
    move = None
    try:
        dest_before = host_state(hosts[1].conn)
        # 1 MiB/s under a guest that dirties far more: the move runs until it is cancelled.
        move = subprocess.Popen([sys.executable, "-m", "virtops", "-c", first.uri, "vm", "migrate", "stay",
                                 "--to", f"lab:{second.name}", "--copy-storage", "--bandwidth", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_ctrl_c_as_at_a_terminal)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _job_running(hosts[0], "stay"):
            time.sleep(0.2)
        assert _job_running(hosts[0], "stay")
        move.send_signal(signal.SIGINT)
        _out, err = move.communicate(timeout=120)
        assert move.returncode != 0 and "runs on its own host as before" in err, err
        assert domains(first)["stay"] == "running"
        assert host_state(hosts[1].conn) == dest_before  # its copy of the disk removed again
    finally:
        if move is not None and move.poll() is None:  # a command that did not end: none outlives the test
            move.kill()
        for host in hosts:
            host.close()
    cli_ok(first.uri, "vm", "destroy", "stay")
    cli_ok(first.uri, "vm", "delete", "stay", "--remove-storage")


# How the first run of a move ends: killed (kill -9) before its first step (creating the copy's
# volume on the destination), before its second (the move itself), in the middle of the move (which
# goes on in the source's daemon without the command), or there and its job then aborted by hand.
KILLED = ("before-the-volume", "before-the-move", "mid-move", "mid-move-then-aborted")


@pytest.mark.parametrize("how", KILLED)
def test_a_killed_move_run_again_finishes_it(pair, boot, how):
    first, second = pair
    make_vm(first, "kil", "local", boot)
    if how.startswith("mid-move"):
        keep_dirtying_memory(first, "kil")
    move = ["vm", "migrate", "kil", "--to", f"lab:{second.name}", "--copy-storage", "--bandwidth"]
    hosts = [Host(lab.uri) for lab in pair]
    try:
        fault = {"VIRTOPS_FAULT_KILL_AT": str(KILLED.index(how) + 1)} if how.startswith("before") else {}
        killed = subprocess.Popen([sys.executable, "-m", "virtops", "-c", first.uri, *move, "1"],
                                  env={**os.environ, **fault}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if how.startswith("mid-move"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _job_running(hosts[0], "kil"):
                time.sleep(0.2)
            assert _job_running(hosts[0], "kil")
            killed.kill()
        killed.communicate(timeout=120)
        assert killed.returncode == -signal.SIGKILL
        if how.startswith("mid-move"):
            stop_dirtying_memory(first, "kil")  # the job goes on without the command, and now can end
        if how == "mid-move-then-aborted":
            hosts[0].conn.lookupByName("kil").abortJob()  # as `virsh domjobabort kil` would
            while _job_running(hosts[0], "kil"):
                time.sleep(0.2)
        again = run_cli(*move, "100", uri=first.uri)  # the same command, at a bandwidth a test can wait for
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"VM kil moved live to lab:{second.name}"), again.stdout
        assert "kil" not in domains(first)
        assert domains(second) == {"kil": "running"}
        assert [v.name() for v in hosts[1].conn.storagePoolLookupByName("local").listAllVolumes()] == ["kil"]
    finally:
        for host in hosts:
            host.close()


def test_a_source_daemon_restarted_mid_move_is_one_sentence_and_a_run_again_moves(pair, boot):
    first, second = pair
    make_vm(first, "rst", "local", boot)
    keep_dirtying_memory(first, "rst")
    move = ["vm", "migrate", "rst", "--to", f"lab:{second.name}", "--copy-storage", "--bandwidth"]
    host = Host(first.uri)
    dest = Host(second.uri)
    try:
        dest_before = host_state(dest.conn)
        moving = subprocess.Popen([sys.executable, "-m", "virtops", "-c", first.uri, *move, "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _job_running(host, "rst"):
            time.sleep(0.2)
        assert _job_running(host, "rst")
        first.restart_libvirtd()  # libvirt cancels a migration its daemon restarted under
        _out, err = moving.communicate(timeout=180)
        assert moving.returncode == 1 and len(err.strip().splitlines()) == 1, err
        assert "nothing was kept" in err, err
        assert domains(first)["rst"] == "running"
        assert host_state(dest.conn) == dest_before
    finally:
        host.close()
        dest.close()
    stop_dirtying_memory(first, "rst")
    again = run_cli(*move, "100", uri=first.uri)
    assert again.returncode == 0, again.stderr
    assert domains(second) == {"rst": "running"}


def _job_running(host, name: str) -> bool:
    import libvirt

    try:
        return host.conn.lookupByName(name).jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError:
        return False


def test_evacuate_moves_every_running_vm_and_names_the_ones_left(pair, boot):
    first, second = pair
    make_vm(first, "ev1", "nfs", boot)
    make_vm(first, "ev2", "local", boot)  # not shared, no --copy-storage: it stays
    planned = json.loads(cli_ok(first.uri, "host", "evacuate", first.uri, "--to", f"lab:{second.name}",
                                "--dry-run", "--json"))
    assert {s["name"]: s["destination"] for s in planned} == {"ev1": f"lab:{second.name}", "ev2": None}
    assert set(domains(first)) >= {"ev1", "ev2"}  # a dry run moves nothing
    # Without --to: every other host of the selection; the source itself is no destination, and a
    # lab that is down is a reason, not the end of the plan.
    down = f"lab:pytest-mg0-{TOKEN}"
    result = run_cli("-H", f"lab:{first.name},lab:{second.name},{down}", "host", "evacuate", f"lab:{first.name}",
                     "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    auto = {s["name"]: s for s in json.loads(result.stdout)}
    assert {name: s["destination"] for name, s in auto.items()} == {"ev1": f"lab:{second.name}", "ev2": None}
    assert set(auto["ev2"]["reasons"]) == {f"lab:{second.name}", down}, auto["ev2"]
    assert down in auto["ev1"]["reasons"] and f"lab:{first.name}" not in auto["ev1"]["reasons"]
    result = run_cli("host", "evacuate", first.uri, "--to", f"lab:{second.name}", "--json", uri=first.uri)
    assert result.returncode == 1  # ev2 is left
    steps = {s["name"]: s for s in json.loads(result.stdout)}
    assert steps["ev1"]["result"] == "moved" and steps["ev2"]["result"] == "left"
    assert "--copy-storage" in steps["ev2"]["reasons"][f"lab:{second.name}"] or \
        "copy_storage" in steps["ev2"]["reasons"][f"lab:{second.name}"]
    assert domains(second)["ev1"] == "running" and domains(first)["ev2"] == "running"
    cli_ok(second.uri, "vm", "destroy", "ev1")
    cli_ok(second.uri, "vm", "delete", "ev1", "--remove-storage")
    cli_ok(first.uri, "vm", "destroy", "ev2")
    cli_ok(first.uri, "vm", "delete", "ev2", "--remove-storage")


def test_the_rest_api_moves_a_vm_and_takes_only_host_names(pair, boot, tmp_path):
    import httpx

    from tests.helpers import serve_process

    first, second = pair
    make_vm(first, "viaweb", "nfs", boot)
    password = tmp_path / "password"
    password.write_text("migrate-test-password\n")
    with serve_process(first.uri, password) as base, httpx.Client(base_url=base, timeout=300) as client:
        login = client.post("/login", json={"password": "migrate-test-password"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        raw = client.post("/api/vms/viaweb/migrate", json={"to": "qemu+ext:///system?command=/bin/true"})
        assert raw.status_code == 422 and raw.json()["field"] == "to"
        missing = client.post("/api/vms/viaweb/migrate", json={"to": f"lab:{second.name}", "offline": True})
        assert missing.status_code == 422 and missing.json()["field"] == "offline"  # it runs: live only
        assert client.get("/api/vms/viaweb/migrate").status_code == 404  # no move under way
        started = client.post("/api/vms/viaweb/migrate", json={"to": f"lab:{second.name}"})
        assert started.status_code == 202, started.text  # the move runs on; the request does not wait
        assert started.json()["state"] == "moving"
        again = client.post("/api/vms/viaweb/migrate", json={"to": f"lab:{second.name}"})
        assert again.status_code == 422 and "being moved already" in again.json()["error"]
        move = _move_ended(client, "viaweb")
        assert move["state"] == "moved", move
        assert move["result"]["mode"] == "live" and move["error"] is None
    assert domains(second)["viaweb"] == "running" and "viaweb" not in domains(first)
    cli_ok(second.uri, "vm", "destroy", "viaweb")
    cli_ok(second.uri, "vm", "delete", "viaweb", "--remove-storage")


def test_the_rest_api_cancels_a_move_and_the_vm_stays(pair, boot, tmp_path):
    import httpx

    from tests.helpers import serve_process

    first, second = pair
    make_vm(first, "webstay", "local", boot)
    keep_dirtying_memory(first, "webstay")
    password = tmp_path / "password"
    password.write_text("migrate-test-password\n")
    hosts = [Host(lab.uri) for lab in pair]
    try:
        dest_before = host_state(hosts[1].conn)
        with serve_process(first.uri, password) as base, httpx.Client(base_url=base, timeout=60) as client:
            login = client.post("/login", json={"password": "migrate-test-password"})
            client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            started = client.post("/api/vms/webstay/migrate", json={"to": f"lab:{second.name}", "copy_storage": True,
                                                                     "bandwidth_mib_s": 1})
            assert started.status_code == 202, started.text
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _job_running(hosts[0], "webstay"):
                time.sleep(0.2)
            assert client.post("/api/vms/webstay/migrate/cancel").status_code == 200
            move = _move_ended(client, "webstay")
        assert move["state"] == "failed" and "runs on its own host as before" in move["error"], move
        assert domains(first)["webstay"] == "running"
        assert host_state(hosts[1].conn) == dest_before
    finally:
        for host in hosts:
            host.close()


def _move_ended(client, name: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        move = client.get(f"/api/vms/{name}/migrate").json()
        if move["state"] != "moving":
            return move
        time.sleep(0.3)
    raise AssertionError(f"the move of {name} did not end: {move}")
