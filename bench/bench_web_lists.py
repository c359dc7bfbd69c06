"""The web console's VM list at scale: a lab host with 2,000 defined domains (bench_vm_list.py's,
each with two disks and a NIC on the default network), `virtops serve` on it, and Debian's Chromium
driven by Playwright. Timed, as medians of several runs: the VMs page from navigation to its first
page of rows, a search by MAC typed into the list, a sort by another column, the next page; and
GET /api/vms?nics=true (what the page asks) against GET /api/vms. The load average is printed: on a
shared machine, the figures from one run are what counts.

    python bench/bench_web_lists.py [--domains 2000] [--repeat 5] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_vm_list import define_domains  # noqa: E402  (the same 2,000 domains)
from tests.helpers import serve_process  # noqa: E402
from virtops.lab.labhost import Lab  # noqa: E402

LAB = "bench-web-lists"
PASSWORD = "bench-lists"


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f})"


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the lab host up")
    args = parser.parse_args()
    lab = Lab(LAB)
    if not lab.exists():
        lab.up()
    print(f"defined {args.domains} domains in {define_domains(lab.uri, args.domains):.1f} s; load {os.getloadavg()}")
    scratch = Path(tempfile.mkdtemp(prefix="bench-web-lists-"))
    password_file = scratch / "password"
    password_file.write_text(PASSWORD + "\n")
    try:
        with serve_process(lab.uri, password_file) as base, sync_playwright() as playwright:
            api_figures(base, args.repeat)
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page_figures(browser, base, args.repeat, args.domains)
            browser.close()
    finally:
        shutil.rmtree(scratch)
        if not args.keep:
            lab.down()
    print(f"load after: {os.getloadavg()}")


def api_figures(base: str, repeat: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        client.post("/login", json={"password": PASSWORD}).raise_for_status()
        for path in ("/api/vms", "/api/vms?nics=true"):
            samples = [timed(lambda: client.get(path).raise_for_status()) for _ in range(repeat)]
            print(f"GET {path}: {median_ms(samples)}, {len(client.get(path).json())} rows")


def page_figures(browser, base: str, repeat: int, domains: int) -> None:
    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.goto("/login?next=/vms")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/vms")
    rows = page.locator("#vms tbody tr[data-name]")
    loads, searches, sorts, pages = [], [], [], []
    for run in range(repeat):
        index = 17 + run * 101
        mac = f"52:54:00:be:{index // 256:02x}:{index % 256:02x}"
        loads.append(timed(lambda: (page.goto("/vms"), rows.first.wait_for())))
        count = page.locator(".list-controls[data-for=vms] .list-count")
        searches.append(timed(lambda: (page.fill(".list-controls input[name=q]", mac),
                                       page.locator(f"#vms tr[data-name=bench{index:04d}]").wait_for(),
                                       count.filter(has_text=f"1 of {domains} VMs").wait_for())))
        page.fill(".list-controls input[name=q]", "")
        count.filter(has_text=f"{domains} VMs").first.wait_for()
        sorts.append(timed(lambda: (page.click("#vms th button[data-sort=vCPUs]"),
                                    page.locator("#vms th[aria-sort] button[data-sort=vCPUs]").wait_for())))
        pages.append(timed(lambda: (page.click("[data-page=next]"), page.locator(".pager .page-of", has_text="page 2 of").wait_for())))
    print(f"VMs page to its first rows: {median_ms(loads)}")
    print(f"search by a MAC: {median_ms(searches)}")
    print(f"sort by vCPUs: {median_ms(sorts)}")
    print(f"next page: {median_ms(pages)}")
    context.close()


if __name__ == "__main__":
    main()
