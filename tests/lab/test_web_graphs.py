"""Usage graphs (uPlot) in a real Chromium: the host page's CPU and memory, a VM page's CPU, memory,
disk and network, drawn from the history `serve` samples (web/history.py) and growing as it does;
the 1h / 24h / 30d switch over a history saved before serve started; the VM list's CPU sparklines
(one request for the whole list) and the pools' usage bars."""
from __future__ import annotations

import os
import re
import time
from unittest import mock

import pytest
from playwright.sync_api import expect

from tests.conftest import WEB_PASSWORD
from tests.helpers import serve_process
from tests.lab import test_web_screen
from virtops.web import rings

screen_guest = test_web_screen.screen_guest  # a running test guest
VM = test_web_screen.VM
POOL = "graphs-pool"


def _saved_history(at: int) -> list[rings.Series]:
    """The host and the VM with a full 24h and 30d tier ending before `at` (the 1h tier fills live)."""
    made = []
    for name in ("host", VM):
        series = rings.Series(name, seen=at)
        for key in ("24h", "30d"):
            step, size = rings.TIERS[key]
            for i in range(size):
                series.tiers[key].append((at // step - size + i) * step, [10 + i % 50, 1e8, 0, 0, 100, 50])
        made.append(series)
    return made


@pytest.fixture(scope="module")
def web_server(web_lab, tmp_path_factory):
    """This module's own `virtops serve` (the page fixture logs in to it), with a cache directory
    of its own holding a history saved before it started."""
    from virtops.host import Host
    from virtops.web.history import history_file

    folder = tmp_path_factory.mktemp("graphs")
    (folder / "password").write_text(WEB_PASSWORD + "\n")
    host = Host(web_lab.uri)
    try:
        with mock.patch.dict(os.environ, {"VIRTOPS_CACHE": str(folder / "cache")}):
            rings.write(history_file(host), _saved_history(int(time.time())))
    finally:
        host.close()
    with serve_process(web_lab.uri, folder / "password", env={"VIRTOPS_CACHE": str(folder / "cache")}) as base:
        yield base


def points(slot) -> int:
    return int(slot.get_attribute("data-points") or 0)


def test_host_and_vm_graphs_grow_live_and_switch_ranges(page, screen_guest):
    page.goto("/overview")
    host = page.locator("#host-graphs")
    expect(host.locator(".uplot")).to_have_count(2)
    expect(host).to_have_attribute("data-range", "1h")
    expect(host).to_have_attribute("data-points", re.compile(r"[1-9]"))
    host.get_by_role("button", name="24h").click()
    expect(host).to_have_attribute("data-points", "1440")  # the saved minutes, read back at start
    expect(host.locator("h3")).to_have_text("Usage, the last 24 hours")
    expect(host.get_by_role("button", name="24h")).to_have_attribute("aria-pressed", "true")
    host.get_by_role("button", name="30d").click()
    expect(host).to_have_attribute("data-points", "720")

    page.goto(f"/vms/{VM}")
    vm = page.locator("#vm-graphs")
    expect(vm.locator(".uplot")).to_have_count(4)
    expect(vm.locator(".uplot canvas")).to_have_count(4)
    vm.get_by_role("button", name="30d").click()
    expect(vm).to_have_attribute("data-points", "720")
    vm.get_by_role("button", name="1h").click()
    expect(vm).to_have_attribute("data-range", "1h")
    expect(vm).to_have_attribute("data-points", re.compile(r"[2-9]|\d\d"), timeout=60_000)
    first = points(vm)
    page.wait_for_timeout(11_000)  # two more samples, 5 s apart
    assert points(vm) > first


def _lit_pixels(canvas) -> int:
    return canvas.evaluate("(c) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
                           ".filter((v, i) => i % 4 === 3 && v > 0).length")


def test_vm_list_sparklines_come_from_one_request(page, screen_guest):
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/stats" in request.url else None)
    page.goto("/vms")
    spark = page.locator(f"canvas[data-sparkline={VM}]")
    expect(spark).to_have_attribute("data-points", re.compile(r"[1-9]"), timeout=60_000)
    assert _lit_pixels(spark) > 0  # a line drawn, where a blank canvas has no pixel at all
    expect(spark).to_have_attribute("title", re.compile(r"^CPU \d+(\.\d)?% \(last 5 min\)$"))
    page.wait_for_timeout(11_000)  # two more refreshes of the list's sparklines
    assert asked and all(url.endswith("/api/stats/vms?range=1h&figures=cpu_percent&last=60") for url in asked)
    assert 2 <= len(asked) <= 5  # one request per refresh for the whole list, every 5 s, never one per VM


def test_pool_usage_bars(page, web_lab):
    from virtops.host import Host
    from virtops.ops.pool import PoolSpec

    host = Host(web_lab.uri)
    try:
        if not host.pools.exists(POOL):
            host.pools.create(PoolSpec(name=POOL, target=f"/var/lib/libvirt/{POOL}"), start=True)
        pool = host.conn.storagePoolLookupByName(POOL)
        _state, capacity, allocation, _available = pool.info()
        page.goto("/pools")
        bar = page.locator(f"#pools tr[data-name={POOL}] meter")
        expect(bar).to_have_attribute("max", str(capacity))
        assert abs(int(bar.get_attribute("value")) - allocation) <= capacity // 100  # the filesystem moves a little
        expect(page.locator(f"#pools tr[data-name={POOL}] .usage")).to_have_text(re.compile(r"\d+%$"))
        assert bar.get_attribute("title").endswith("allocated")
    finally:
        host.pools.delete(POOL)
        host.close()
