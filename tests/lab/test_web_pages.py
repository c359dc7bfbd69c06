"""A page per object in a real Chromium against `virtops serve` on a real libvirtd: each kind opened
by its URL and from its list, tabs switched (the tab in the URL: reload keeps it, back returns),
an unknown object's 404 page, a test guest's DHCP lease appearing on its network's page and its
IP on its own without a reload, and the serial console's Reconnect. Every page is kept as a
screenshot (tests/screenshots.py)."""
from __future__ import annotations

import libvirt
import pytest
from playwright.sync_api import expect

from tests.helpers import cli_ok, host_state, volume_element
from virtops.xmlmodels import doc as X
from tests.screenshots import save_screenshot

expect.set_options(timeout=20_000)  # locator assertions only: the pages' CSP refuses wait_for_function
NET, POOL, VOLUME, VM = "pagesnet", "pagespool", "vol1", "pagesvm"
SUBNET = "192.168.217"


@pytest.fixture
def context(page):
    """The logged-in page's context (conftest): a test opens more pages in it, each watched too."""
    return page.context


@pytest.fixture(scope="module")
def objects(web_lab, guest_image):
    """A network with DHCP, a pool with a volume, and a stopped test guest with a NIC on the network
    (its shell on the serial console); removed at the end."""
    from virtops.testguest.image import kernel_cmdline

    uri = web_lab.uri
    cli_ok(uri, "net", "create", NET, "--subnet", f"{SUBNET}.0/24")
    cli_ok(uri, "pool", "create", POOL, "--target", f"/var/lib/libvirt/{POOL}")
    cli_ok(uri, "vol", "create", POOL, VOLUME, "--capacity", "16M", "--format", "raw")
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}"
    cli_ok(uri, "vm", "create", VM, "--memory", "128M", "--vcpus", "1", "--disk", f"{POOL}/{VOLUME}",
           "--network", NET, "--boot", boot)
    conn = libvirt.open(uri)
    try:
        yield conn
    finally:
        dom = conn.lookupByName(VM)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        conn.close()
        cli_ok(uri, "pool", "delete", POOL, "--with-volumes")
        cli_ok(uri, "net", "delete", NET)


def _selected_tab(page):
    return page.locator("nav.tabs [aria-selected=true]")


@pytest.mark.parametrize("url, heading, tab, shown", [
    (f"/networks/{NET}", f"network {NET}", "DHCP and leases", "#net-ranges"),
    (f"/pools/{POOL}", f"pool {POOL}", "Volumes", f"#volumes tr[data-name={VOLUME}]"),
    (f"/pools/{POOL}/volumes/{VOLUME}", f"volume {POOL}/{VOLUME}", "XML", "#object-xml"),
    (f"/vms/{VM}", VM, "Disks and NICs", "#vm-disks tr"),
])
def test_object_page_by_url_with_its_tabs(page, objects, url, heading, tab, shown):
    page.goto(url)
    expect(page.locator("h1")).to_have_text(heading)
    expect(_selected_tab(page)).to_have_text("Overview")
    expect(page.locator(".facts dd").first).not_to_be_empty()
    save_screenshot(page, f"{url}-overview")

    page.get_by_role("tab", name=tab).click()
    slug = page.get_by_role("tab", name=tab).get_attribute("data-tab")
    page.wait_for_url(f"**{url}/{slug}")
    expect(page.locator(shown).first).to_be_visible()
    expect(page.locator("[data-panel=overview]")).to_be_hidden()
    save_screenshot(page, f"{url}-{slug}")

    page.reload()  # the tab is in the URL
    expect(_selected_tab(page)).to_have_text(tab)
    expect(page.locator(shown).first).to_be_visible()

    page.go_back()  # to the overview, in the page
    page.wait_for_url(f"**{url}")
    expect(_selected_tab(page)).to_have_text("Overview")
    expect(page.locator(f"[data-panel={slug}]")).to_be_hidden()
    page.go_forward()
    expect(_selected_tab(page)).to_have_text(tab)


def test_every_tab_of_a_vm_and_its_xml(page, objects):
    page.goto(f"/vms/{VM}/settings")
    expect(page.locator("#vm-settings-actions").get_by_role("button", name="Delete")).to_be_visible()
    save_screenshot(page, f"vm-{VM}-settings")
    page.get_by_role("tab", name="XML").click()
    expect(page.locator("#object-xml")).to_have_text(objects.lookupByName(VM).XMLDesc(0))
    save_screenshot(page, f"vm-{VM}-xml")
    page.get_by_role("tab", name="Console").click()
    expect(page.locator("#console-state")).to_have_text(f"{VM} is not running: start it to use its console.")
    expect(page.locator("#console-reconnect")).to_be_hidden()


OBJECT_URLS = [f"/networks/{NET}", f"/pools/{POOL}", f"/pools/{POOL}/volumes/{VOLUME}", f"/vms/{VM}"]
WIZARDS = [("/networks", "#net-new", "#net-wizard", {"name": "shotnet"}), ("/pools", "#pool-new", "#pool-wizard", {"name": "shotpool"}),
           ("/vms", "#vm-new", "#vm-wizard", {"name": "shotvm"})]


def _kept(page, name: str) -> None:
    """Saved, and a picture: a PNG of the whole page (not a blank or cut one)."""
    path = save_screenshot(page, name)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000, path


def test_every_page_tab_and_wizard_step_is_kept_as_a_screenshot(page, objects):
    """Issue 15's point 8: a person can look at each list page, each tab of each kind of object
    page and each step of each wizard, under the test run's output (tests/screenshots.py). The
    wizards are cancelled: the host stays as it was."""
    before = host_state(objects)
    for url in ("/overview", "/vms", "/networks", "/pools"):
        page.goto(url)
        expect(page.locator("table tbody tr, #host-facts dd").first).to_be_visible()
        _kept(page, f"list{url}")
    for url in OBJECT_URLS:
        page.goto(url)
        expect(page.locator(".facts dd").first).not_to_be_empty()
        for tab in page.locator("nav.tabs [data-tab]").evaluate_all("tabs => tabs.map(t => t.dataset.tab)"):
            page.locator(f"nav.tabs [data-tab={tab}]").click()
            expect(page.locator(f"[data-panel={tab}]")).to_be_visible()
            _kept(page, f"tab{url}-{tab}")
    for url, opener, wizard, first in WIZARDS:
        page.goto(url)
        page.click(opener)
        for name, value in first.items():
            page.fill(f"{wizard} input[name={name}]", value)
        steps = page.locator(f"{wizard} fieldset[data-step]").count()
        for step in range(1, steps + 1):
            expect(page.locator(f"{wizard} .step-now")).to_contain_text(f"Step {step} of {steps}:")
            _kept(page, f"wizard{url}-step{step}")
            if step < steps:
                page.click(f"{wizard} [data-next]")
        page.click(f"{wizard} [data-cancel]")
        expect(page.locator(wizard)).to_be_hidden()
    assert host_state(objects) == before


@pytest.mark.parametrize("list_url, name, url", [
    ("/networks", NET, f"/networks/{NET}"), ("/pools", POOL, f"/pools/{POOL}"), ("/vms", VM, f"/vms/{VM}")])
def test_object_page_from_its_list(page, objects, list_url, name, url):
    page.goto(list_url)
    page.locator(f"tr[data-name={name}]").get_by_role("link", name=name, exact=True).click()
    page.wait_for_url(f"**{url}")
    expect(page.locator(".facts dd").first).not_to_be_empty()
    expect(page.locator("header nav a[aria-current=page]")).to_have_attribute("href", list_url)
    page.go_back()
    page.wait_for_url(f"**{list_url}")
    expect(page.locator(f"tr[data-name={name}]")).to_be_visible()


def test_volume_page_from_its_pool(page, objects):
    page.goto(f"/pools/{POOL}/devices")
    page.locator(f"#volumes tr[data-name={VOLUME}]").get_by_role("link", name=VOLUME, exact=True).click()
    page.wait_for_url(f"**/pools/{POOL}/volumes/{VOLUME}")
    expect(page.locator("#volume-facts [data-fact='Used by']")).to_have_text(VM)
    page.locator("#volume-facts").get_by_role("link", name=VM).click()
    page.wait_for_url(f"**/vms/{VM}")


@pytest.mark.parametrize("url, sentence", [
    ("/vms/nosuch", "no such VM 'nosuch' on host"),
    ("/networks/nosuch/devices", "no such network 'nosuch' on host"),
    (f"/pools/{POOL}/volumes/nosuch", f"no such volume '{POOL}/nosuch' on host"),
])
def test_unknown_object_is_a_404_page(page, objects, web_lab, url, sentence):
    before = host_state(objects)
    answer = page.goto(url)
    assert answer.status == 404
    expect(page.locator("#not-found")).to_have_text(f"{sentence} {web_lab.uri}.")
    expect(page.get_by_role("link", name="Back to")).to_be_visible()
    save_screenshot(page, f"not-found-{url}")
    assert host_state(objects) == before


def shown_size(size: int) -> str:
    """A size as the pages write it (app.js size())."""
    units, value, unit = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.2f} {units[unit]}"


def test_volumes_and_pool_usage_made_by_the_cli_appear_without_reload(context, page, objects, web_lab):
    """libvirt has no event for a volume: one made with libvirt straight (as virsh vol-create does,
    no pool refresh after it), then resized and deleted by the CLI, all outside the page, shows on
    the pool's page, its list and the volume's own page, with the pool's allocation, none of them
    reloaded."""
    uri = web_lab.uri
    page.goto(f"/pools/{POOL}/devices")
    expect(page.locator(f"#volumes tr[data-name={VOLUME}]")).to_be_visible()
    pools = context.new_page()
    pools.goto("/pools")
    # A dir pool's usage is its file system's, which libvirt reads again at each volume change (and
    # other work on this machine moves): the page must show what libvirt says after each change.
    pool = objects.storagePoolLookupByName(POOL)
    allocation = pools.locator(f"#pools tr[data-name={POOL}] td").nth(5)
    expect(allocation).to_have_text(shown_size(pool.info()[2]))
    before = pool.info()[2]
    for each in (page, pools):
        each.evaluate("window.__marker = 'same page'")

    pool.createXML(X.to_string(volume_element("outside", 24 << 20, "raw", allocation=24 << 20)))
    row = page.locator("#volumes tr[data-name=outside]")
    expect(row).to_contain_text("24.00 MiB")
    assert shown_size(pool.info()[2]) != shown_size(before)  # 24 MiB more allocated, at least
    expect(allocation).to_have_text(shown_size(pool.info()[2]))  # the pool's usage with it
    page.get_by_role("tab", name="Overview").click()
    expect(page.locator("#pool-facts [data-fact=Allocation]")).to_have_text(shown_size(pool.info()[2]))

    volume = context.new_page()
    volume.goto(f"/pools/{POOL}/volumes/outside")
    expect(volume.locator("#volume-facts [data-fact=Capacity]")).to_have_text("24.00 MiB")
    volume.evaluate("window.__marker = 'same page'")
    cli_ok(uri, "vol", "resize", f"{POOL}/outside", "40M")
    expect(volume.locator("#volume-facts [data-fact=Capacity]")).to_have_text("40.00 MiB")
    page.get_by_role("tab", name="Volumes").click()
    expect(row).to_contain_text("40.00 MiB")
    cli_ok(uri, "vol", "delete", f"{POOL}/outside")
    expect(row).to_have_count(0)
    expect(volume.locator("#object-gone")).to_contain_text("is no longer on this host")
    expect(allocation).to_have_text(shown_size(pool.info()[2]))
    for each in (page, pools, volume):
        assert each.evaluate("window.__marker") == "same page"
    pools.close()
    volume.close()


def test_lease_and_ip_appear_without_reload_and_the_console_reconnects(context, page, objects):
    """The guest boots with the pages open: its lease shows on the network's page, its IP on the
    VM's, neither reloaded. Another console taking the guest's closes the page's, whose Reconnect
    opens it again."""
    mac = objects.lookupByName(VM).XMLDesc(0).split("<mac address='")[1].split("'")[0]
    page.goto(f"/networks/{NET}/devices")
    expect(page.locator("#net-leases tbody tr.empty")).to_have_text("No leases yet.")
    vm_page = context.new_page()
    vm_page.goto(f"/vms/{VM}")
    expect(vm_page.locator("#vm-facts [data-fact=IP]")).to_have_text("-")

    objects.lookupByName(VM).create()
    lease = page.locator(f"#net-leases tr[data-mac='{mac}']")
    expect(lease).to_contain_text(f"{SUBNET}.", timeout=90_000)  # TCG boots the guest in 6-17 s here
    address = lease.locator("td").nth(1).inner_text()
    expect(vm_page.locator("#vm-facts [data-fact=IP]")).to_have_text(address)
    expect(vm_page.locator("#vm-facts [data-fact=State]")).to_have_text("running")
    save_screenshot(page, f"network-{NET}-lease")
    save_screenshot(vm_page, f"vm-{VM}-running")
    vm_page.close()

    # It has no graphical screen: its page asks for a screenshot once, says so, and asks no more
    # (the page's clock run a minute on: the thumbnails would come every 10 s).
    screen_page = context.new_page()
    asked: list[str] = []
    screen_page.on("request", lambda request: asked.append(request.url) if "/screenshot" in request.url else None)
    screen_page.clock.install()
    screen_page.goto(f"/vms/{VM}/console")
    expect(screen_page.locator("#vm-screen .vm-screen-status")).to_have_text("No graphical screen: this VM has a serial console only.")
    screen_page.clock.run_for(60_000)
    screen_page.evaluate("1")  # a round trip to the page after its clock ran
    assert len(asked) == 1, asked
    screen_page.close()

    page.goto(f"/vms/{VM}/console")
    terminal = page.locator("#terminal .xterm-helper-textarea")
    expect(page.locator("#console-state")).to_have_text("connected")
    _run_in_guest(page, terminal, "echo page-$((6*7))", "page-42")
    save_screenshot(page, f"vm-{VM}-console")

    # Another console takes the guest's (the API's force): the page's closes, and says so.
    page.evaluate("""(url) => { window.thief = new WebSocket(url); }""",
                  page.evaluate("`ws://${location.host}/api/vms/${document.body.dataset.name}/console?force=true`"))
    expect(page.locator("#console-reconnect")).to_be_visible()
    expect(page.locator("#console-state")).to_contain_text("The console closed")
    save_screenshot(page, f"vm-{VM}-console-closed")
    page.evaluate("window.thief.close()")
    page.click("#console-reconnect")
    expect(page.locator("#console-state")).to_have_text("connected")
    expect(page.locator("#console-reconnect")).to_be_hidden()
    _run_in_guest(page, page.locator("#terminal .xterm-helper-textarea"), "echo again-$((6*8))", "again-48")


def _run_in_guest(page, terminal, command: str, answer: str) -> None:
    """Type a command into the console's shell until it answers (the guest may still be booting)."""
    rows = page.locator("#terminal .xterm-rows")
    for _attempt in range(60):
        terminal.type(command)
        terminal.press("Enter")
        try:
            expect(rows).to_contain_text(answer, timeout=2_000)
            return
        except AssertionError:
            continue
    expect(rows).to_contain_text(answer)
