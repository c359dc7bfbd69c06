"""Usage figures (`vm stats`, `top`, `host info`) of a real running test guest: the guest busy-loops,
writes its disk and pings its gateway, and the figures follow (ops/stats.py)."""
from __future__ import annotations

import json
import re

import pytest

from tests.helpers import cli_ok, let_qemu_in, run_cli
from tests.lab.test_handbook_guest import _pool, remove_domains_and_pool
from virtops.testguest.image import kernel_cmdline, wait_for_report

POOL = "statstest"
VM = "busy"
MIB = 1024**2


@pytest.fixture
def running_guest(lab, host, guest_image):
    conn = host.conn
    _pool(conn, POOL)
    let_qemu_in(host.uri, POOL)
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}"
    cli_ok(lab.uri, "vm", "create", VM, "--memory", "128M", "--new-disk", f"{POOL}:16M:raw", "--network", "default",
           "--boot", boot, "--start")
    console = host.vms.console(VM)
    try:
        wait_for_report(console, lambda r: any(n.ip for n in r.nics))
        yield console
    finally:
        console.close()
        remove_domains_and_pool(conn, POOL)


def _stats(lab, *args: str) -> dict:
    rows = json.loads(cli_ok(lab.uri, "vm", "stats", *args, "--json"))
    return {row["name"]: row for row in rows}


def _run_in_guest(console, command: str, done: str, timeout_s: float = 120) -> None:
    since = len(console.buffer)
    console.write(f"{command}; echo {done}-$?\n".encode())
    text = console.wait_for(lambda t: f"{done}-0" in t, timeout_s, since)
    assert f"{done}-0" in text, text[-2000:]


def test_figures_of_a_running_guest_follow_what_it_does(lab, host, running_guest):
    console = running_guest
    dom = host.conn.lookupByName(VM)
    quiet = _stats(lab, VM, "--interval", "2")[VM]
    assert quiet["state"] == "running" and quiet["vcpus"] == 1 and quiet["memory_bytes"] == 128 * MIB
    assert quiet["memory_rss_bytes"] > 0  # the QEMU process holds memory on the host
    assert 0.0 <= quiet["cpu_percent"] <= 100.0

    # A busy loop: the one vCPU is busy, and the figure says so.
    console.write(b"(while :; do :; done) & echo $! > /tmp/busy\n")
    busy = _stats(lab, VM, "--interval", "3")[VM]
    assert busy["cpu_percent"] > 20.0, busy
    assert busy["totals"]["cpu_time_ns"] > quiet["totals"]["cpu_time_ns"]
    _run_in_guest(console, "kill $(cat /tmp/busy)", "killed")

    # The guest writes 4 MiB to its disk (past its caches): the disk's counters grow by as much.
    before = _stats(lab, VM)[VM]["totals"]
    _run_in_guest(console, "dd if=/dev/urandom of=/dev/vda bs=64k count=64 conv=fsync 2>/dev/null", "written")
    _run_in_guest(console, "dd if=/dev/vda of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null", "read")
    after = _stats(lab, VM)[VM]["totals"]
    assert after["disk_write_bytes"] - before["disk_write_bytes"] >= 4 * MIB, (before, after)
    assert after["disk_write_reqs"] > before["disk_write_reqs"]
    assert after["disk_read_bytes"] - before["disk_read_bytes"] >= 2 * MIB, (before, after)
    # The same counters as libvirt's per-device calls give, read after the bulk sample.
    _rd_reqs, rd_bytes, wr_reqs, wr_bytes, _errs = dom.blockStats("vda")
    assert after["disk_write_bytes"] <= wr_bytes and after["disk_write_reqs"] <= wr_reqs
    assert after["disk_read_bytes"] <= rd_bytes

    # Ten pings to the gateway: received and sent bytes grow by at least ten echo packets each.
    _run_in_guest(console, "ping -c 10 -i 0.2 192.168.122.1 >/dev/null", "pinged")
    pinged = _stats(lab, VM)[VM]["totals"]
    assert pinged["net_rx_bytes"] - after["net_rx_bytes"] >= 10 * 98, (after, pinged)
    assert pinged["net_tx_bytes"] - after["net_tx_bytes"] >= 10 * 98, (after, pinged)
    device = dom.interfaceStats(json.loads(cli_ok(lab.uri, "vm", "iflist", VM, "--json"))[0]["interface"])
    assert pinged["net_rx_bytes"] <= device[0] and pinged["net_tx_bytes"] <= device[4]

    # While the guest pings on, the rates are positive.
    console.write(b"ping -i 0.1 192.168.122.1 >/dev/null & echo $! > /tmp/ping\n")
    rates = _stats(lab, VM, "--interval", "2")[VM]
    assert rates["net_rx_bytes_per_s"] > 0 and rates["net_tx_bytes_per_s"] > 0, rates
    _run_in_guest(console, "kill $(cat /tmp/ping)", "stopped")


def test_top_host_info_and_refusals(lab, host, running_guest):
    # Piped, top prints one frame: the host's line and the VM's row.
    frame = cli_ok(lab.uri, "top", "--interval", "1")
    assert "host " in frame and "CPU" in frame and VM in frame, frame
    result = run_cli("-H", f"lab:{lab.name}", "top", "--interval", "1")
    assert result.returncode == 0 and f"lab:{lab.name}" in result.stdout and VM in result.stdout, result
    # A host of the fleet that does not answer is said in the frame, and top exits 1.
    result = run_cli("-H", f"lab:{lab.name},lab:nosuchlab", "top", "--interval", "1")
    assert result.returncode == 1 and "host lab:nosuchlab: No libvirt daemon answers" in result.stdout, result
    assert VM in result.stdout

    # host info samples CPU use only when asked (--cpu: over 1 s, as virsh nodecpustats --percent),
    # and says so; memory use is always there.
    info = json.loads(cli_ok(lab.uri, "host", "info", "--json"))
    assert info["cpu_percent"] is None and info["cpu_window_s"] is None
    assert 0 < info["memory_used_bytes"] < info["memory_bytes"]
    assert "CPU use:       not sampled (--cpu samples it over 1 s)" in cli_ok(lab.uri, "host", "info")
    info = json.loads(cli_ok(lab.uri, "host", "info", "--cpu", "--json"))
    assert 0.0 <= info["cpu_percent"] <= 100.0 and 1.0 <= info["cpu_window_s"] < 1.5, info
    assert re.search(r"CPU use: +[0-9.]+% of \d+ CPUs over 1\.\d s", cli_ok(lab.uri, "host", "info", "--cpu"))

    everything = _stats(lab, "--all")
    assert VM in everything
    refused = run_cli("vm", "stats", "nosuchvm", uri=lab.uri)
    assert refused.returncode == 1 and "no domain named 'nosuchvm'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert run_cli("vm", "stats", "--interval", "0", uri=lab.uri).returncode == 2
