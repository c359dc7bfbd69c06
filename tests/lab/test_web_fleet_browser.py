"""The fleet's web console in a real Chromium, `virtops -H ... serve` over three lab hosts: the
overview's tiles, each host's own pages under /hosts/NAME/, the fleet-wide VM list with search and
a host filter, and, mid-test, one host's daemon stopped and another's hung (SIGSTOP by pid): their
tiles and pages grey out, the third host's pages keep answering, and both come back by themselves."""
from __future__ import annotations

import os
import signal
import time

import libvirt
import pytest
from playwright.sync_api import expect

from tests.conftest import WEB_PASSWORD, logged_in
from tests.helpers import define_small_domain, fresh_labs, host_state, serve_process
from tests.screenshots import save_screenshot
from virtops.lab.proc import wait_for_exit

TOKEN = str(os.getpid() % 100000)
NAMES = [f"pytest-wb{i}-{TOKEN}" for i in range(3)]
HOSTS = [f"lab:{name}" for name in NAMES]
# the watcher asks every 2 s; a hung daemon counts as away after 6 s (keepalive's window)
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def labs():
    with fresh_labs(NAMES) as labs:
        try:
            yield labs
        finally:
            for lab in labs:  # a daemon this test stopped comes back before going down
                pid = lab._pid("libvirtd")
                if pid:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass


WEB_START = "/fleet"  # where conftest's logged-in page starts: the fleet's overview


@pytest.fixture(scope="module")
def web_base(labs, tmp_path_factory):
    """`virtops -H ... serve` over the three labs: conftest's page logs in on it."""
    password_file = tmp_path_factory.mktemp("fleetbrowser") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    with serve_process(f"-H {','.join(HOSTS)}", password_file) as base:
        yield base


def tile(page, host: str):
    return page.locator(f".tile[data-host='{host}']")


def test_the_overview_has_a_tile_per_host_with_its_figures(page, labs):
    for host in HOSTS:
        expect(tile(page, host)).to_have_attribute("data-state", "up")
    define_small_domain(labs[1].uri, "tiled")
    expect(tile(page, HOSTS[1]).locator("[data-figure=vms]")).to_have_text("0 running of 1")
    expect(tile(page, HOSTS[0]).locator("[data-figure=vms]")).to_have_text("0 running of 0")
    expect(tile(page, HOSTS[0]).locator("[data-figure=memory]")).to_contain_text(" of ")
    tile(page, HOSTS[1]).get_by_role("link", name="VMs").click()
    page.wait_for_url(f"**/hosts/{HOSTS[1]}/vms")
    expect(page.locator("#vms tr[data-name=tiled]")).to_be_visible()


def test_each_host_has_its_own_pages(page, labs):
    before = [host_state(libvirt.open(lab.uri)) for lab in labs[:2]]
    page.goto(f"/hosts/{HOSTS[2]}/networks")
    expect(page.locator("header .uri")).to_contain_text(NAMES[2])
    page.click("#net-new")
    for fields in ({"name": "page-net"}, {"subnet": "192.168.202.0/24"}, {}, {}):
        for name, value in fields.items():
            page.fill(f"#net-wizard fieldset:not([hidden]) input[name={name}]", value)
        page.click("#net-wizard [data-next]")
    page.click("#net-wizard [data-next]")
    page.click("#net-wizard [data-finish]")
    expect(page.locator("#networks tr[data-name=page-net]")).to_be_visible()
    conn = libvirt.open(labs[2].uri)
    try:
        assert conn.networkLookupByName("page-net").isActive()
    finally:
        conn.close()
    assert [host_state(libvirt.open(lab.uri)) for lab in labs[:2]] == before
    page.goto(f"/hosts/{HOSTS[0]}/networks")
    expect(page.locator("#networks tr[data-name=default]")).to_be_visible()
    assert page.locator("#networks tr[data-name=page-net]").count() == 0
    page.get_by_role("link", name="Host", exact=True).click()
    page.wait_for_url(f"**/hosts/{HOSTS[0]}/overview")
    expect(page.locator("#host-facts")).to_contain_text(NAMES[0])


def test_the_fleet_vm_list_searches_and_filters_by_host(page, labs):
    for lab, name in ((labs[0], "n10"), (labs[1], "n2"), (labs[2], "n1"), (labs[0], "n2")):
        define_small_domain(lab.uri, name)
    page.goto("/fleet-vms")
    rows = page.locator("#fleet-rows tbody tr")
    page.fill(".list-controls input[name=q]", "n")
    expect(rows).to_have_count(4)
    assert [(row.get_attribute("data-name"), row.get_attribute("data-host")) for row in rows.all()] == [
        ("n1", HOSTS[2]), ("n2", HOSTS[0]), ("n2", HOSTS[1]), ("n10", HOSTS[0])]
    page.select_option(".list-controls select[name=f-host]", HOSTS[0])
    expect(rows).to_have_count(2)
    page.fill(".list-controls input[name=q]", "n1")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-name", "n10")
    rows.first.get_by_role("link", name=HOSTS[0]).click()
    page.wait_for_url(f"**/hosts/{HOSTS[0]}/vms")


def test_the_fleet_pages_are_kept_as_screenshots(page, labs):
    """Issue 15's point 8 for a fleet's console: its overview, its lists and a host's own pages."""
    shots = [("/fleet", ".tile"), ("/fleet-vms", "#fleet-rows tbody tr"), ("/fleet-networks", "#fleet-rows tbody tr"),
             ("/fleet-pools", "#fleet-rows tbody tr"), (f"/hosts/{HOSTS[1]}/vms", "#vms tbody tr"),
             (f"/hosts/{HOSTS[1]}/overview", "#host-facts dd")]
    for url, shown in shots:
        page.goto(url)
        expect(page.locator(shown).first).to_be_visible()
        path = save_screenshot(page, f"fleet{url}")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000, path


def _row(page, name: str, host: str):
    return page.locator(f"#fleet-rows tr[data-name={name}][data-host='{host}']")


def test_bulk_actions_on_the_fleet_vm_list_answer_per_vm_and_host(page, labs):
    """One name on two hosts is two VMs: each host's server part does its own (the core's rules),
    and each VM gets its result; delete asks first, naming each VM with its host."""
    chosen = [("b1", 0), ("b1", 1), ("b2", 2)]
    for name, at in chosen:
        define_small_domain(labs[at].uri, name)
    conns = [libvirt.open(lab.uri) for lab in labs]
    try:
        page.goto("/fleet-vms?q=b")
        for name, at in chosen:
            _row(page, name, HOSTS[at]).locator("input[type=checkbox]").check()
        expect(page.locator(".bulk-count")).to_have_text("3 selected")
        page.locator("[data-bulk-action=start]").click()
        results = page.locator(".bulk-results li")
        expect(results).to_have_count(3)
        for name, at in chosen:
            expect(page.locator(f".bulk-results li[data-name={name}][data-host='{HOSTS[at]}']")).to_have_text(
                f"{name} on {HOSTS[at]}: started")
        assert all(conns[at].lookupByName(name).isActive() for name, at in chosen)
        expect(page.locator("#notice")).to_contain_text(f"{HOSTS[0]}: 1 of 1 done.")

        conns[2].lookupByName("b2").destroy()  # stopped: deleted; the running b1 is refused, the others go on
        expect(_row(page, "b2", HOSTS[2])).to_contain_text("shut off")
        for name, at in (("b1", 0), ("b2", 2)):
            _row(page, name, HOSTS[at]).locator("input[type=checkbox]").check()
        before = [host_state(conn) for conn in conns]
        page.locator("[data-bulk-action=delete]").click()
        expect(page.locator("#confirm-title")).to_have_text("Delete 2 VMs?")
        expect(page.locator("#confirm-guests li")).to_have_text([f"b1 on {HOSTS[0]}", f"b2 on {HOSTS[2]}"])
        page.click("#confirm-cancel")
        assert [host_state(conn) for conn in conns] == before
        page.locator("[data-bulk-action=delete]").click()
        page.click("#confirm-ok")
        expect(page.locator(f".bulk-results li[data-host='{HOSTS[0]}']")).to_contain_text(
            f"b1 on {HOSTS[0]}: not done: vm: b1 is running")
        expect(page.locator(f".bulk-results li[data-host='{HOSTS[2]}']")).to_have_text(
            f"b2 on {HOSTS[2]}: deleted; its volumes stay")
        expect(_row(page, "b2", HOSTS[2])).to_have_count(0)
        assert "b2" not in [dom.name() for dom in conns[2].listAllDomains()]
        assert conns[0].lookupByName("b1").isActive() and conns[1].lookupByName("b1").isActive()
    finally:
        for conn in conns:
            for dom in conn.listAllDomains():
                if dom.name() in ("b1", "b2"):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
            conn.close()


def test_a_stopped_and_a_hung_host_grey_out_and_come_back(page, labs, browser, web_base):
    stopped, hung = labs[2], labs[1]
    stopped_pid, hung_pid = stopped._pid("libvirtd"), hung._pid("libvirtd")
    other = logged_in(browser, web_base, f"/hosts/{HOSTS[1]}/vms")  # the hung host's own page, straight from the login
    expect(other.locator("#vms tr[data-name=tiled]")).to_be_visible()
    os.kill(stopped_pid, signal.SIGTERM)
    wait_for_exit(stopped_pid, 20)
    os.kill(hung_pid, signal.SIGSTOP)
    try:
        expect(tile(page, HOSTS[2])).to_have_attribute("data-state", "away")
        expect(tile(page, HOSTS[2])).to_contain_text("No libvirt daemon answers")
        expect(tile(page, HOSTS[1])).to_have_attribute("data-state", "away")
        expect(tile(page, HOSTS[1])).to_contain_text("did not answer within")
        expect(other.locator("body")).to_have_attribute("data-host-state", "away")  # the hung host's own page
        expect(other.locator("#host-state")).to_contain_text("did not answer within")
        assert tile(page, HOSTS[0]).get_attribute("data-state") == "up"
        started = time.monotonic()
        page.goto(f"/hosts/{HOSTS[0]}/vms")  # the good host's pages answer meanwhile
        expect(page.locator("#vms tr[data-name=n10]")).to_be_visible()
        assert time.monotonic() - started < 5
        page.goto("/fleet-vms")
        expect(page.locator("#fleet-failures li")).to_have_count(2)
        expect(page.locator(f"#fleet-rows tr[data-host='{HOSTS[0]}']")).to_have_count(2)
        assert page.locator(f"#fleet-rows tr[data-host='{HOSTS[1]}']").count() == 0
        page.goto("/fleet")
    finally:
        os.kill(hung_pid, signal.SIGCONT)
        stopped.restart_libvirtd()
    for host in HOSTS:
        expect(tile(page, host)).to_have_attribute("data-state", "up")
    expect(other.locator("body")).to_have_attribute("data-host-state", "up")
    expect(other.locator("#vms tr[data-name=tiled]")).to_be_visible()
    page.goto(f"/hosts/{HOSTS[2]}/networks")
    expect(page.locator("#networks tr[data-name=default]")).to_be_visible()
    other.context.close()
    assert other.errors == []
