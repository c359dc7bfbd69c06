"""Usage graphs (uPlot) in a real Chromium: the host page's CPU and memory, a VM page's CPU, memory,
disk and network, drawn from the history `serve` samples (web/history.py) and growing as it does."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.lab import test_web_browser, test_web_screen

browser, page = test_web_browser.browser, test_web_browser.page  # the logged-in Chromium page's fixtures
screen_guest = test_web_screen.screen_guest  # a running test guest
VM = test_web_screen.VM


def points(slot) -> int:
    return int(slot.get_attribute("data-points") or 0)


def test_host_and_vm_graphs_grow_live(page, screen_guest):
    page.goto("/overview")
    host = page.locator("#host-graphs")
    expect(host.locator(".uplot")).to_have_count(2)
    expect(host).to_have_attribute("data-points", re.compile(r"[1-9]"))

    page.goto("/vms")
    page.locator(f"#vms tr[data-name={VM}]").get_by_role("button", name=VM).click()
    vm = page.locator("#vm-graphs")
    expect(vm.locator(".uplot")).to_have_count(4)
    expect(vm.locator(".uplot canvas")).to_have_count(4)
    expect(vm).to_have_attribute("data-points", re.compile(r"[2-9]|\d\d"), timeout=60_000)
    first = points(vm)
    page.wait_for_timeout(11_000)  # two more samples, 5 s apart
    assert points(vm) > first
