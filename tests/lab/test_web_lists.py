"""The console's lists at scale and its finish, in a real Chromium (Debian's, driven by Playwright)
against `virtops serve` on a lab host of this module's own, loaded with 300 defined domains and
one booted test guest: search by MAC and IP, natural sort, a state filter and pages kept in the
URL, bulk start/shutdown/delete with a result per VM, a phone's width, dark mode, empty states,
success notices, per-object button names, and axe-core finding nothing on any page."""
from __future__ import annotations

import os
import re
from pathlib import Path

import libvirt
import pytest
from playwright.sync_api import expect

from tests import conftest
from tests.conftest import WEB_PASSWORD
from tests.helpers import fresh_lab, host_state, serve_process, small_domain_xml

AXE = Path(__file__).resolve().parents[2] / "src/virtops/web/node_modules/axe-core/axe.min.js"
LOADED = 300  # defined domains lst1 ... lst300, each with a NIC on the default network
GUEST, GUEST_MAC = "lstguest", "52:54:00:aa:ff:01"
PAGES = ["/overview", "/vms", "/networks", "/pools"]
expect.set_options(timeout=20_000)


def mac_of(index: int) -> str:
    return f"52:54:00:aa:{index // 256:02x}:{index % 256:02x}"


@pytest.fixture(scope="module")
def lab():
    lab = fresh_lab(f"pytest-lists-{os.getpid() % 100000}")
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def conn(lab, guest_image):
    """The lab's connection, once it holds the 300 domains and the test guest booting (its lease
    comes while the first tests run)."""
    from virtops.host import Host
    from virtops.ops.domain import DomainSpec, KernelBoot, NicSpec
    from virtops.testguest.image import kernel_cmdline

    conn = libvirt.open(lab.uri)
    for index in range(1, LOADED + 1):
        conn.defineXML(small_domain_xml(f"lst{index}", network="default", mac=mac_of(index)))
    host = Host(lab.uri)
    boot = KernelBoot(kernel=str(guest_image.kernel), initrd=str(guest_image.initrd), cmdline=kernel_cmdline("shell"))
    spec = DomainSpec(name=GUEST, virt_type=host.virt_type(), memory_mib=128, boot=boot,
                      nics=[NicSpec(network="default", mac=GUEST_MAC)])
    host.close()
    conn.defineXML(spec.to_xml()).create()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def server(conn, lab, tmp_path_factory):
    password_file = tmp_path_factory.mktemp("lists") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    with serve_process(lab.uri, password_file) as base:
        yield base


WEB_START = "/vms"  # where conftest's logged-in page starts


@pytest.fixture(scope="module")
def web_base(server):
    return server  # conftest's page logs in on this module's own server


def logged_in(browser, server, **context_options):
    """A page logged in on this module's server (conftest's logged_in: page.errors), at /vms."""
    return conftest.logged_in(browser, server, WEB_START, **context_options)


def names(page, table="#vms") -> list[str]:
    return page.locator(f"{table} tbody tr[data-name]").evaluate_all("rows => rows.map(r => r.dataset.name)")


def test_empty_states_say_what_to_do(page, conn):
    page.goto("/pools")
    expect(page.locator("#pools tbody tr.empty")).to_have_text("No storage pools yet — Add pool… makes one.")
    page.goto("/vms?q=no-such-vm")
    expect(page.locator("#vms tbody tr.empty")).to_have_text("No VMs match “no-such-vm”.")
    page.goto("/vms?q=lst7")
    page.locator("#vms tr[data-name=lst7]").get_by_role("link", name="lst7", exact=True).click()
    page.get_by_role("tab", name="Disks and NICs").click()
    expect(page.locator("#vm-disks tbody tr.empty")).to_have_text("No disks yet — attach a volume below.")


def test_names_sort_naturally_and_pages_stay_on_reload(page, conn):
    page.goto("/vms?f-state=shut+off")
    expect(page.locator(".list-controls[data-for=vms] .list-count")).to_have_text(f"{LOADED} of {LOADED + 1} VMs")
    assert names(page)[:12] == [f"lst{i}" for i in range(1, 13)]  # lst1, lst2 ... lst10, never lst1, lst10, lst100
    page.get_by_role("button", name="Name", exact=True).click()
    expect(page.locator("#vms th[aria-sort=descending]")).to_have_count(1)
    assert names(page)[:3] == ["lst300", "lst299", "lst298"]
    page.click("[data-page=next]")
    expect(page.locator(".pager .page-of")).to_have_text("page 2 of 6")
    assert names(page)[0] == "lst250"
    assert re.search(r"[?&]page=2\b", page.url) and "desc=1" in page.url and "sort=Name" in page.url
    page.reload()
    expect(page.locator(".pager .page-of")).to_have_text("page 2 of 6")
    assert names(page)[0] == "lst250" and len(names(page)) == 50


def test_search_finds_a_vm_by_mac_and_filters_by_state(page, conn):
    page.goto("/vms")
    page.fill(".list-controls input[name=q]", mac_of(213))
    expect(page.locator("#vms tbody tr")).to_have_count(1)
    assert names(page) == ["lst213"]
    page.fill(".list-controls input[name=q]", "default")  # a network's name: every VM is on it
    page.select_option(".list-controls select[name=f-state]", "running")
    expect(page.locator("#vms tbody tr")).to_have_count(1)
    assert names(page) == [GUEST]
    assert "f-state=running" in page.url and "q=default" in page.url


def test_search_finds_a_vm_by_its_leased_ip(page, conn):
    ip = None
    for _ in range(90):  # the guest asks for its lease once booted (TCG: 6-17 s); libvirt knows it then
        leases = conn.networkLookupByName("default").DHCPLeases(GUEST_MAC)
        if leases:
            ip = leases[0]["ipaddr"]
            break
        page.wait_for_timeout(1000)
    assert ip, "the test guest got no lease"
    page.goto(f"/vms?q={ip}")
    expect(page.locator("#vms tbody tr")).to_have_count(1)
    assert names(page) == [GUEST]
    page.goto("/networks?q=192.168.122.0")  # networks are searched by address too
    expect(page.locator("#networks tbody tr")).to_have_count(1)
    assert names(page, "#networks") == ["default"]


def test_bulk_start_and_shutdown_answer_per_vm(page, conn):
    page.goto("/vms?q=lst2")  # lst2, lst20 ... lst29, lst200 ... lst299
    for name in ("lst2", "lst20"):
        page.locator(f"#vms tr[data-name={name}] input[type=checkbox]").check()
    expect(page.locator(".bulk-count")).to_have_text("2 selected")
    page.locator("[data-bulk-action=start]").click()
    expect(page.locator(".bulk-results li")).to_have_count(2)
    expect(page.locator(".bulk-results li[data-name=lst2]")).to_have_text("lst2: started")
    expect(page.locator(".bulk-results li[data-name=lst20]")).to_have_text("lst20: started")
    expect(page.locator("#notice")).to_have_text("2 of 2 done.")
    assert conn.lookupByName("lst2").isActive() and conn.lookupByName("lst20").isActive()
    try:
        before = host_state(conn)
        page.locator("#vms tr[data-name=lst2] input[type=checkbox]").check()
        page.locator("#vms tr[data-name=lst21] input[type=checkbox]").check()  # stopped: refused, the other goes on
        page.locator("[data-bulk-action=shutdown]").click()
        expect(page.locator(".bulk-results li[data-name=lst2]")).to_have_text("lst2: asked to shut down")
        expect(page.locator(".bulk-results li[data-name=lst21]")).to_have_text(
            "lst21: not done: vm: lst21 is not running, so there is nothing to shut down.")
        expect(page.locator(".bulk-results li[data-ok=false]")).to_have_count(1)
        assert host_state(conn)["dom/lst21"] == before["dom/lst21"]
    finally:
        for name in ("lst2", "lst20"):
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()


def test_bulk_delete_asks_first_and_keeps_a_running_vm(page, conn):
    page.goto("/vms?sort=Name&desc=1")  # lstguest, lst300, lst299, ...
    for name in (GUEST, "lst300", "lst299"):
        page.locator(f"#vms tr[data-name={name}] input[type=checkbox]").check()
    page.fill(".list-controls input[name=q]", "lst")  # the search keeps them shown, so selected
    before = host_state(conn)
    page.locator("[data-bulk-action=delete]").click()
    expect(page.locator("#confirm-title")).to_have_text("Delete 3 VMs?")  # the console's one dialog (dialogs.js)
    expect(page.locator("#confirm-guests li")).to_have_count(3)
    page.click("#confirm-cancel")
    expect(page.locator(f"#vms tr[data-name={GUEST}] input[type=checkbox]")).to_be_checked()
    assert host_state(conn) == before  # cancelled: nothing changed
    page.locator("[data-bulk-action=delete]").click()
    page.click("#confirm-ok")
    expect(page.locator(f".bulk-results li[data-name={GUEST}]")).to_have_text(
        re.compile(f"^{GUEST}: not done: vm: {GUEST} is running"))
    expect(page.locator(".bulk-results li[data-name=lst300]")).to_have_text("lst300: deleted; its volumes stay")
    expect(page.locator("#vms tr[data-name=lst300]")).to_have_count(0)
    assert conn.lookupByName(GUEST).isActive()
    assert {"lst299", "lst300"}.isdisjoint(dom.name() for dom in conn.listAllDomains())
    for index in (299, 300):  # as loaded, for the tests after this one
        conn.defineXML(small_domain_xml(f"lst{index}", network="default", mac=mac_of(index)))


def test_a_phone_scrolls_tables_in_their_box_never_the_page(browser, server, conn):
    page = logged_in(browser, server, viewport={"width": 390, "height": 844})
    assert page.locator("meta[name=viewport]").get_attribute("content") == "width=device-width, initial-scale=1"
    for path in PAGES:
        page.goto(path)
        page.locator("#live[data-state=live]").wait_for()
        page.locator("main table tbody tr, #host-facts dd").first.wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.goto("/vms")
    box = page.locator("#vms").locator("xpath=..")
    expect(box).to_have_class("table-box")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # the table is wider: it scrolls inside
    page.context.close()
    assert page.errors == []


def test_dark_mode_follows_the_system(browser, server, conn):
    page = logged_in(browser, server, color_scheme="dark")
    for path in PAGES:
        page.goto(path)
        red, green, blue = map(int, re.findall(r"\d+", page.evaluate("getComputedStyle(document.body).backgroundColor"))[:3])
        assert max(red, green, blue) < 60, path
        text = page.evaluate("getComputedStyle(document.body).color")
        assert min(map(int, re.findall(r"\d+", text)[:3])) > 180, path
    page.context.close()
    assert page.errors == []


def axe_violations(page) -> list:
    """axe-core's violations on the page. The page's CSP refuses an injected <script> (Playwright's
    add_script_tag is inline), so its source runs through Playwright's evaluate, which the policy
    does not govern; the page's own scripts stay under it."""
    if page.evaluate("typeof window.axe") == "undefined":
        page.evaluate(AXE.read_text() + "\n;0")
    return page.evaluate("""axe.run(document, { resultTypes: ["violations"] }).then(r => r.violations.map(v =>
        `${v.id}: ${v.nodes.map(n => n.target.join(" ")).slice(0, 5).join(", ")}`))""")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_any_page(browser, server, conn, scheme):
    page = logged_in(browser, server, color_scheme=scheme)
    for path in PAGES:
        page.goto(path)
        page.locator("#live[data-state=live]").wait_for()
        page.locator("main table tbody tr, #host-facts dd").first.wait_for()
        assert axe_violations(page) == [], path
    page.goto("/vms?q=lst1")
    page.locator("#vms tr[data-name=lst1]").get_by_role("link", name="lst1", exact=True).click()
    expect(page.locator("#vm-facts [data-fact=State]")).to_have_text("shut off")
    assert axe_violations(page) == [], "a VM's page"
    for tab in ("Disks and NICs", "Settings", "XML", "Console"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tabpanel", name=tab)).to_be_visible()
        assert axe_violations(page) == [], f"a VM's {tab} tab"
    page.goto("/login")
    assert axe_violations(page) == [], "/login"
    page.context.close()
    assert page.errors == []


def test_repeated_buttons_name_their_object_and_actions_say_done(page, conn):
    page.goto("/networks")
    row = page.locator("#networks tr[data-name=default]")
    expect(row.get_by_role("button", name="Stop default", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="XML default", exact=True)).to_be_visible()
    page.goto("/vms?q=lst5")
    expect(page.get_by_role("checkbox", name="Select lst5", exact=True)).to_be_visible()
    page.locator("#vms tr[data-name=lst5]").get_by_role("link", name="lst5", exact=True).click()
    page.get_by_role("button", name="start", exact=True).click()
    expect(page.locator("#notice")).to_have_text("VM lst5 started.")
    assert conn.lookupByName("lst5").isActive()
    conn.lookupByName("lst5").destroy()
