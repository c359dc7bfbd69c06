"""Safe actions in the web console, in a real Chromium against `virtops serve` on a lab host with a
running test guest: every disruptive action asks in a dialog what the core says it costs (the
guests it cuts off), Cancel and Escape leave the host's XML unchanged, Confirm does it with the
option the core asks for; a refusal's ways out are buttons of a dialog (a pool with volumes: delete
them too, or keep the data); wizards are keyboard-safe (Enter moves
on and never finishes early, Escape cancels, focus in the first field, a step indicator) and send
one request however often Finish is clicked; NFS Browse shows a spinner and clears old exports."""
from __future__ import annotations

import ipaddress
import json
import subprocess

import libvirt
import pytest
from playwright.sync_api import expect

from tests.conftest import web_conn
from tests.helpers import cli_ok, host_state
from virtops.host import Host
from virtops.testguest.image import kernel_cmdline, wait_for_report
from virtops.xmlmodels import doc as X

expect.set_options(timeout=20_000)  # locator assertions only: the pages' CSP refuses eval

POOL, NET, SPARE_NET, VM, MAC = "safepool", "safenet", "safespare", "safevm", "52:54:00:5a:fe:01"
SUBNET = ipaddress.ip_network("10.77.5.0/24")


@pytest.fixture(scope="module")
def scene(web_lab, guest_image):
    """The test guest running (shell mode, a lease obtained) with its disk vda in pool safepool, a
    second disk vdb there, and its NIC on network safenet; an unused network safespare."""
    uri = web_lab.uri
    cli_ok(uri, "pool", "create", POOL, "--target", f"/var/lib/libvirt/{POOL}", "--mode", "0711")
    for name in ("sys", "data", "spare"):
        cli_ok(uri, "vol", "create", POOL, name, "8M")
    cli_ok(uri, "net", "create", NET, "--subnet", str(SUBNET))
    cli_ok(uri, "net", "create", SPARE_NET, "--subnet", "10.77.6.0/24")
    host = Host(uri)
    cli_ok(uri, "vm", "create", VM, "--memory", "160M", "--disk", f"{POOL}/sys", "--disk", f"{POOL}/data",
           "--network", f"{NET},mac={MAC}", "--start",
           "--boot", f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}")
    console = host.vms.console(VM)
    try:
        wait_for_report(console, lambda report: any(n.mac == MAC and n.ip for n in report.nics), 120)
        yield host
    finally:
        console.close()
        for dom in host.conn.listAllDomains():
            if dom.name() == VM:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        if POOL in [p.name for p in host.pools.list()]:
            if not host.pools.info(POOL).active:
                host.pools.start(POOL)
            host.pools.delete(POOL, with_volumes=True, force=True)
        for name in (NET, SPARE_NET, "keysafe"):
            if host.networks.exists(name):
                host.networks.delete(name, force=True)
        host.close()

conn = web_conn  # libvirt on the web lab; the logged-in `page` is conftest's too


def _dialog(page):
    return page.locator("#confirm-dialog")


def _asked(page, title: str, naming: str | None) -> None:
    """The confirmation is open with the core's cost, the guests it names, and Cancel focused."""
    dialog = _dialog(page)
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-title")).to_have_text(title)
    expect(page.locator("#confirm-cancel")).to_be_focused()
    if naming:
        expect(dialog.locator("#confirm-cost")).to_contain_text(naming)
        expect(dialog.locator(f"#confirm-guests li[data-guest={naming}]")).to_have_count(1)


def _cancelled_both_ways(page, conn, open_it, title: str, naming: str | None) -> None:
    """Escape, then Cancel: each closes the dialog and leaves the host's XML as it was."""
    before = host_state(conn)
    for leave in (lambda: page.keyboard.press("Escape"), lambda: page.click("#confirm-cancel")):
        open_it()
        _asked(page, title, naming)
        leave()
        expect(_dialog(page)).to_be_hidden()
        assert host_state(conn) == before, title


def _bridge_members(web_lab, bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-n", web_lab.netns, "-j", "link", "show", "master", bridge],
                         check=True, capture_output=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def _tap(conn) -> str:
    root = X.parse(conn.lookupByName(VM).XMLDesc(0))
    return root.xpath(f"devices/interface[mac/@address='{MAC}']/target/@dev")[0]


def test_stopping_a_network_in_use_asks_names_the_guest_and_start_replugs_it(page, conn, scene, web_lab):
    row = page.locator(f"#networks tr[data-name={NET}]")
    stop = row.get_by_role("button", name=f"Stop {NET}", exact=True)
    _cancelled_both_ways(page, conn, stop.click, f"Stop network {NET}?", VM)
    assert MAC in page.locator("#confirm-cost").inner_text()

    # The REST API refuses too without force, names the guest, and offers force as the way out.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    before = host_state(conn)
    answer = page.request.post(f"/api/networks/{NET}/actions/stop", headers={"X-CSRF-Token": token})
    assert answer.status == 409 and answer.json()["option"] == "force" and f"{VM} ({MAC})" in answer.json()["error"]
    assert host_state(conn) == before

    stop.click()
    _asked(page, f"Stop network {NET}?", VM)
    page.click("#confirm-ok")
    expect(row).to_contain_text("inactive")
    assert not conn.networkLookupByName(NET).isActive()

    bridge = X.parse(conn.networkLookupByName(NET).XMLDesc(0)).find("bridge").get("name")
    with page.expect_response(lambda r: r.url.endswith(f"/api/networks/{NET}/actions/start")) as started:
        row.get_by_role("button", name=f"Start {NET}", exact=True).click()
    assert started.value.ok
    assert _tap(conn) in _bridge_members(web_lab, bridge)  # re-plugged into the new bridge


def test_a_refusal_s_way_out_is_a_button(page, conn, scene, web_lab):
    """The dialog said the spare network costs nothing; a NIC plugged onto it meanwhile makes the
    core refuse the stop: its sentence, in a dialog whose "Go ahead anyway" button sends force."""
    row = page.locator(f"#networks tr[data-name={SPARE_NET}]")
    row.get_by_role("button", name=f"Stop {SPARE_NET}", exact=True).click()
    expect(page.locator("#confirm-cost")).to_contain_text("no running guest has a NIC")
    cli_ok(web_lab.uri, "vm", "attach-nic", VM, "--network", SPARE_NET, "--mac", "52:54:00:5a:fe:02", "--live")
    before = host_state(conn)
    page.click("#confirm-ok")
    expect(page.locator("#error")).to_contain_text(f"running guests {VM} (52:54:00:5a:fe:02)")
    assert "--force" not in page.locator("#error").inner_text()
    expect(_dialog(page).locator("#confirm-cost")).to_contain_text(f"running guests {VM} (52:54:00:5a:fe:02)")
    assert host_state(conn) == before
    _dialog(page).get_by_role("button", name="Go ahead anyway").click()
    expect(row).to_contain_text("inactive")
    expect(page.locator("#error")).to_be_hidden()


def test_a_network_edit_that_restarts_asks_naming_the_guest_and_replugs_it(page, conn, scene, web_lab):
    """The Edit form's restart (mode nat to route) cuts the running guest's NIC off for a moment: the
    plan first, then Apply asks with the core's cost; Cancel and Escape change nothing, Confirm
    restarts the network and its NIC is back on the bridge."""
    page.goto(f"/networks/{NET}/settings")
    page.select_option("#net-edit select[name=mode]", "route")
    page.click("#net-edit button[type=submit]")
    expect(page.locator("#net-edit-outcome")).to_have_text("Plan (nothing changed yet):")
    expect(page.locator("#net-edit-plan")).to_contain_text(f"re-attach NIC {MAC}")
    _cancelled_both_ways(page, conn, lambda: page.click("#net-edit-apply"), f"Restart network {NET}?", VM)
    assert f"{VM} ({MAC}) lose their connection for a moment" in page.locator("#confirm-cost").inner_text()
    page.click("#net-edit-apply")
    _asked(page, f"Restart network {NET}?", VM)
    page.click("#confirm-ok")
    expect(page.locator("#net-edit-outcome")).to_have_text("Done:")
    assert X.parse(conn.networkLookupByName(NET).XMLDesc(0)).find("forward").get("mode") == "route"
    bridge = X.parse(conn.networkLookupByName(NET).XMLDesc(0)).find("bridge").get("name")
    assert _tap(conn) in _bridge_members(web_lab, bridge)  # re-attached


def test_pool_and_volume_confirmations_name_the_running_guest(page, conn, scene):
    page.goto("/pools")
    row = page.locator(f"#pools tr[data-name={POOL}]")
    _cancelled_both_ways(page, conn, row.get_by_role("button", name=f"Stop {POOL}", exact=True).click, f"Stop pool {POOL}?", VM)
    _cancelled_both_ways(page, conn, row.get_by_role("button", name="Delete").click, f"Delete pool {POOL}?", VM)
    row.get_by_role("link", name=POOL, exact=True).click()
    page.get_by_role("tab", name="Volumes").click()
    data = page.locator("#volumes tr[data-name=data]")
    _cancelled_both_ways(page, conn, data.get_by_role("button", name="Delete").click, f"Delete volume {POOL}/data?", VM)
    assert "lose a disk" in page.locator("#confirm-cost").inner_text()

    # An unused volume: the dialog says only what is lost, and Confirm deletes it.
    page.locator("#volumes tr[data-name=spare]").get_by_role("button", name="Delete").click()
    _asked(page, f"Delete volume {POOL}/spare?", None)
    expect(page.locator("#confirm-guests")).to_be_hidden()
    page.click("#confirm-ok")
    expect(page.locator("#volumes tr[data-name=spare]")).to_have_count(0)
    assert "spare" not in conn.storagePoolLookupByName(POOL).listVolumes()


KEEP, DROP = "wayskeep", "waysdrop"
DELETE_VOLUMES, KEEP_DATA = "Delete the volumes too", "Keep the data, remove only the pool definition"


def _on_disk(web_lab, path: str):
    """The lab's /var/lib/libvirt is its state dir's lib/, seen from outside the lab."""
    return web_lab.state_dir / "lib" / path.removeprefix("/var/lib/libvirt/")


def _offers_both_ways(page) -> None:
    dialog = _dialog(page)
    expect(dialog.get_by_role("button", name=DELETE_VOLUMES)).to_be_visible()
    expect(dialog.get_by_role("button", name=KEEP_DATA)).to_be_visible()
    expect(page.locator("#confirm-ok")).to_be_hidden()  # no plain Confirm: the operator chooses
    expect(page.locator("#confirm-cancel")).to_be_focused()
    assert "--" not in dialog.inner_text() and "pass " not in dialog.inner_text()


def test_deleting_a_pool_with_a_volume_offers_both_ways(page, conn, web_lab):
    """The pool's Delete asks which way: Cancel and Escape change nothing; "keep the data" removes
    only the pool's definition (its volume's file stays on the lab's disk). A volume made after the
    dialog said the pool was empty: the core's refusal offers the same two ways, and "delete the
    volumes too" removes the pool, its volume and its directory."""
    host = Host(web_lab.uri)
    for name in (KEEP, DROP):
        cli_ok(web_lab.uri, "pool", "create", name, "--target", f"/var/lib/libvirt/{name}")
    cli_ok(web_lab.uri, "vol", "create", KEEP, "kept", "1M")
    try:
        page.goto("/pools")
        keep = page.locator(f"#pools tr[data-name={KEEP}]").get_by_role("button", name="Delete")
        _cancelled_both_ways(page, conn, keep.click, f"Delete pool {KEEP}?", None)
        keep.click()
        expect(page.locator("#confirm-cost")).to_contain_text("holds 1 volume(s)")
        _offers_both_ways(page)
        page.keyboard.press("Escape")
        keep.click()
        _dialog(page).get_by_role("button", name=KEEP_DATA).click()
        expect(page.locator(f"#pools tr[data-name={KEEP}]")).to_have_count(0)
        assert KEEP not in [pool.name() for pool in conn.listAllStoragePools()]
        assert _on_disk(web_lab, f"/var/lib/libvirt/{KEEP}/kept").is_file()

        page.locator(f"#pools tr[data-name={DROP}]").get_by_role("button", name="Delete").click()
        _asked(page, f"Delete pool {DROP}?", None)
        expect(page.locator("#confirm-ok")).to_have_text("Delete pool")  # empty: one way, Confirm
        cli_ok(web_lab.uri, "vol", "create", DROP, "late", "1M")
        before = host_state(conn)
        page.click("#confirm-ok")
        expect(page.locator("#error")).to_contain_text(f"pool {DROP} holds 1 volume(s)")
        _offers_both_ways(page)
        page.click("#confirm-cancel")
        expect(_dialog(page)).to_be_hidden()
        assert host_state(conn) == before
        page.locator("#ways-out").click()  # the refusal's ways again, from its sentence on the page
        _offers_both_ways(page)
        _dialog(page).get_by_role("button", name=DELETE_VOLUMES).click()
        expect(page.locator(f"#pools tr[data-name={DROP}]")).to_have_count(0)
        expect(page.locator("#error")).to_be_hidden()
        assert DROP not in [pool.name() for pool in conn.listAllStoragePools()]
        assert not _on_disk(web_lab, f"/var/lib/libvirt/{DROP}").exists()
    finally:
        for name in (KEEP, DROP):
            if host.pools.exists(name):
                host.pools.delete(name, with_volumes=True, force=True)
        host.close()


def test_vm_confirmations_detach_force_off_and_delete(page, conn, scene):
    page.goto("/vms")
    page.locator(f"#vms tr[data-name={VM}]").get_by_role("link", name=VM, exact=True).click()
    _cancelled_both_ways(page, conn, page.locator("#vm-actions").get_by_role("button", name="destroy").click, f"Force off {VM}?", VM)
    page.get_by_role("tab", name="Disks and NICs").click()
    disk = page.locator("#vm-disks tr", has_text="vdb")
    nic = page.locator("#vm-nics tr", has_text=MAC)
    _cancelled_both_ways(page, conn, disk.get_by_role("button", name="Detach").click, f"Detach disk vdb from {VM}?", VM)
    assert f"{POOL}/data" in page.locator("#confirm-cost").inner_text()
    _cancelled_both_ways(page, conn, nic.get_by_role("button", name="Detach").click, f"Detach NIC {MAC} from {VM}?", VM)

    disk.get_by_role("button", name="Detach").click()
    page.click("#confirm-ok")
    expect(disk).to_have_count(0)
    config = X.parse(conn.lookupByName(VM).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert config.xpath("devices/disk[target/@dev='vdb']") == []

    page.get_by_role("tab", name="Settings").click()
    delete = page.locator("#vm-settings-actions").get_by_role("button", name="Delete")
    _cancelled_both_ways(page, conn, delete.click, f"Delete VM {VM}?", VM)
    delete.click()  # running: Confirm sends the force the core asks for
    page.click("#confirm-ok")
    page.wait_for_url("**/vms")  # back to the list, without it
    expect(page.locator(f"#vms tr[data-name={VM}]")).to_have_count(0)
    assert VM not in [dom.name() for dom in conn.listAllDomains()]
    assert "sys" in conn.storagePoolLookupByName(POOL).listVolumes()  # its volumes stay


def test_network_wizard_is_keyboard_safe(page, conn, scene):
    wizard = page.locator("#net-wizard")
    now = wizard.locator(".step-now")
    page.click("#net-new")
    expect(wizard.locator("input[name=name]")).to_be_focused()
    expect(now).to_have_text("Step 1 of 6: Name")
    expect(wizard.locator(".steps li[aria-current=step]")).to_have_text("Name")
    before = host_state(conn)
    page.keyboard.type("keysafe")
    page.keyboard.press("Enter")
    expect(now).to_have_text("Step 2 of 6: IPv4 address space")
    expect(wizard.locator("input[name=subnet]")).to_be_focused()
    page.keyboard.type("10.77.7.0/24")
    for step in ("Step 3 of 6: DHCP", "Step 4 of 6: IPv6", "Step 5 of 6: Connection to the physical network",
                 "Step 6 of 6: Summary"):
        page.keyboard.press("Enter")
        expect(now).to_have_text(step)
    expect(wizard.locator("[data-finish]")).to_be_focused()
    assert "10.77.7.0/24" in wizard.locator(".summary").inner_text()
    assert host_state(conn) == before  # Enter through every step created nothing

    page.keyboard.press("Escape")
    expect(wizard).to_be_hidden()
    expect(page.locator("#net-new")).to_be_focused()
    assert host_state(conn) == before

    # Again to the summary, and Finish clicked twice: one network, no refusal.
    page.click("#net-new")
    page.keyboard.type("keysafe")
    page.keyboard.press("Enter")
    page.keyboard.type("10.77.7.0/24")
    for _ in range(4):
        page.keyboard.press("Enter")
    expect(now).to_have_text("Step 6 of 6: Summary")
    with page.expect_response(lambda r: r.url.endswith("/api/networks") and r.request.method == "POST") as created:
        wizard.locator("[data-finish]").dblclick()
    assert created.value.status == 201
    expect(page.locator("#networks tr[data-name=keysafe]")).to_have_count(1)
    expect(wizard).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()
    assert conn.networkLookupByName("keysafe").isActive()


def test_nfs_browse_shows_a_spinner_and_clears_the_old_exports(page, web_lab):
    from virtops.lab.nfs import NfsServer

    page.goto("/pools")
    page.click("#pool-new")
    page.fill("#pool-wizard input[name=name]", "browsed")
    page.select_option("#pool-wizard select[name=type]", "netfs")
    page.click("#pool-wizard [data-next]")
    exports = page.locator("#pool-sources li")
    with NfsServer(web_lab):
        page.fill("#pool-wizard input[name=host]", "192.168.0.254")
        page.click("#pool-browse")
        expect(exports).to_have_text(["192.168.0.254:/nfs"])
    page.locator("#pool-wizard input[name=host]").press_sequentially("9")  # another host typed: the old list goes
    expect(exports).to_have_count(0)

    page.fill("#pool-wizard input[name=host]", "192.168.0.254")
    page.fill("#pool-wizard input[name=host]", "198.51.100.77")  # on the uplink, nobody: the kernel gives up after its ARP tries
    page.click("#pool-browse")
    expect(page.locator("#pool-wizard .spinner[role=status]")).to_be_visible()
    expect(page.locator("#pool-browse")).to_be_disabled()
    expect(page.locator("#error")).to_contain_text("198.51.100.77")
    expect(page.locator("#pool-wizard .spinner")).to_have_count(0)
    expect(page.locator("#pool-browse")).to_be_enabled()
    expect(exports).to_have_count(0)
    page.keyboard.press("Escape")
    expect(page.locator("#pool-wizard")).to_be_hidden()
