"""The New VM wizard in a real Chromium against `virtops serve` on a lab host: the test guest made
and booted entirely in the browser (kernel boot, a NIC on a network, its serial console and its
DHCP lease); an ISO volume as CD-ROM, an imported disk and PXE give the XML libvirt keeps; volumes in
use are not offered; a refused create shows the core's sentence and leaves the host unchanged."""
from __future__ import annotations

import re

import libvirt
import pytest
from playwright.sync_api import expect

from tests.helpers import delete_objects, dir_pool_element, host_state, network_element, volume_element
from virtops.base.errors import VirtopsError
from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.ops.vm import NEW_DISK_FORMAT
from virtops.xmlmodels import doc as X

expect.set_options(timeout=20_000)  # locator assertions: the pages' CSP refuses wait_for_function
POOL, NETWORK, HOLDER = "nvpool", "nvnet", "nvholder"
WIZARD = "#vm-wizard"
WEB_START = "/vms"  # where conftest's logged-in page starts


@pytest.fixture(scope="module")
def conn(web_conn, web_lab):
    """The lab's libvirt, with what the wizard offers: a pool holding an ISO, two free volumes and
    one a VM uses, and a network with DHCP. What this module makes is removed at its end."""
    from virtops.host import Host

    conn = web_conn
    checked = Host(web_lab.uri)
    checked.virt_type()  # a lab's first VM boots the test guest to choose KVM or TCG: done here, not in the page
    checked.close()
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(POOL)))
    pool.build()
    pool.create()
    for name, fmt in (("install.iso", "iso"), ("free", "raw"), ("image", "qcow2"), ("taken", "raw")):
        pool.createXML(X.to_string(volume_element(name, 16 << 20, fmt)))
    conn.defineXML(DomainSpec(name=HOLDER, virt_type="qemu", disks=[DiskSpec(target="vda", pool=POOL, volume="taken")]).to_xml())
    net = conn.networkDefineXML(X.to_string(network_element(NETWORK, None, 57)))
    net.create()
    yield conn
    delete_objects([dom for dom in conn.listAllDomains() if dom.name().startswith("nv")], [net], [pool])


def _open_wizard(page, name: str) -> None:
    page.click("#vm-new")
    expect(page.locator(WIZARD)).to_be_visible()
    page.fill(f"{WIZARD} input[name=name]", name)
    page.click(f"{WIZARD} [data-next]")


def _forward(page, until: str) -> None:
    """Forward through the wizard's steps up to the one whose legend starts with UNTIL."""
    while not page.locator(f"{WIZARD} fieldset:not([hidden]) legend").inner_text().startswith(until):
        page.click(f"{WIZARD} [data-next]")


def _summary(page) -> dict[str, str]:
    _forward(page, "Summary")
    terms = page.locator(f"{WIZARD} .summary dt").all_inner_texts()
    return dict(zip(terms, page.locator(f"{WIZARD} .summary dd").all_inner_texts()))


def _add_nic(page, network: str = NETWORK) -> None:
    _forward(page, "5.")
    page.click("#vm-wizard-add-nic")
    page.locator("#vm-wizard-nics [data-field=network]").last.select_option(network)


def _config(conn, name: str):
    return X.parse(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _boot_order(root) -> list[str]:
    return [boot.get("dev") for boot in root.iterfind("os/boot")]


def _finish_on_its_page(page, name: str, state: str) -> None:
    """Finish: the browser goes on to the new VM's page, which shows its state."""
    page.click(f"{WIZARD} [data-finish]")
    page.wait_for_url(f"**/vms/{name}")
    expect(page.locator("#vm-facts [data-fact=State]")).to_have_text(state)


def _no_start(page) -> None:
    _forward(page, "6.")
    page.uncheck(f"{WIZARD} input[name=start]")


def test_the_test_guest_is_created_and_booted_in_the_browser(page, conn, guest_image):
    """Kernel boot of the test guest with a NIC on a network, started by the wizard; its serial
    console shows the guest's report and shell, and the lease it reports is the page's IP."""
    from virtops.testguest.image import kernel_cmdline, parse_report

    _open_wizard(page, "nvboot")
    page.check(f"{WIZARD} input[name=media][value=kernel]")
    page.fill(f"{WIZARD} input[name=kernel]", str(guest_image.kernel))
    page.fill(f"{WIZARD} input[name=initrd]", str(guest_image.initrd))
    page.fill(f"{WIZARD} input[name=cmdline]", kernel_cmdline("shell"))
    page.click(f"{WIZARD} [data-next]")
    page.fill(f"{WIZARD} input[name=memory]", "256M")
    _add_nic(page)
    summary = _summary(page)
    assert summary["Boots from"].startswith(f"kernel={guest_image.kernel} initrd={guest_image.initrd}")
    assert summary["NICs"] == f"network {NETWORK} (virtio)" and summary["Start once created"] == "yes"
    _finish_on_its_page(page, "nvboot", "running")
    page.get_by_role("button", name="Console", exact=True).click()
    page.locator("#terminal").scroll_into_view_if_needed()  # xterm.js draws only while it is on screen
    terminal = page.locator("#terminal .xterm-rows")
    # TCG boots the guest in 6-17 s here; it reports its NICs once DHCP answered, then runs a shell.
    expect(terminal).to_contain_text("VIRTOPS-END", timeout=120_000)
    report = parse_report(terminal.inner_text())
    mac = _config(conn, "nvboot").find("devices/interface/mac").get("address")
    nic = next(n for n in report.nics if n.mac == mac)
    assert nic.ip and nic.ip.startswith("10.57.0."), report
    page.locator("#terminal .xterm-helper-textarea").type("echo guest-$((6*7))\n")
    expect(terminal).to_contain_text("guest-42")
    page.get_by_role("tab", name="Disks and NICs").click()
    expect(page.locator("#vm-nics")).to_contain_text(nic.ip)  # the lease the guest got, on the VM's page
    conn.lookupByName("nvboot").destroy()


def test_iso_volume_as_cdrom_and_free_volumes_only(page, conn):
    """An ISO of a pool as CD-ROM: a read-only sata cdrom disk and boot order cdrom, hd. The disks
    offered are the volumes no VM uses (not the ISO, not one a VM has)."""
    _open_wizard(page, "nviso")
    cdroms = page.locator(f"{WIZARD} select[name=cdrom] option").all_inner_texts()
    assert f"{POOL}/install.iso" in cdroms and f"{POOL}/free" not in cdroms
    page.select_option(f"{WIZARD} select[name=cdrom]", f"{POOL}/install.iso")
    _forward(page, "4.")
    page.click("#vm-wizard-add-volume")
    offered = page.locator("#vm-wizard-disks [data-field=volume] option").all_inner_texts()
    assert f"{POOL}/free" in offered and f"{POOL}/image" in offered
    assert f"{POOL}/taken" not in offered and f"{POOL}/install.iso" not in offered
    page.locator("#vm-wizard-disks [data-field=volume]").select_option(f"{POOL}/free")
    _no_start(page)
    assert _summary(page)["Boots from"] == f"CD-ROM {POOL}/install.iso"
    _finish_on_its_page(page, "nviso", "shut off")
    root = _config(conn, "nviso")
    assert _boot_order(root) == ["cdrom", "hd"]
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").attrib == {"pool": POOL, "volume": "install.iso"}
    assert cdrom.find("target").get("bus") == "sata" and cdrom.find("readonly") is not None
    disk = root.find("devices/disk[@device='disk']")
    assert disk.find("source").attrib == {"pool": POOL, "volume": "free"} and disk.find("target").get("dev") == "vda"

    # Now that nviso uses it, nvpool/free is offered no more.
    page.goto("/vms")
    _open_wizard(page, "nvnext")
    page.check(f"{WIZARD} input[name=media][value=import]")
    assert f"{POOL}/free" not in page.locator(f"{WIZARD} select[name=import_volume] option").all_inner_texts()
    page.click(f"{WIZARD} [data-cancel]")


def test_an_iso_uploaded_from_the_browser_becomes_the_cdrom(page, conn, web_lab, tmp_path):
    """The ISO is streamed into a new volume of the pool (its bytes intact, its zeros holes), then
    chosen as the CD-ROM; a second upload of the same name is the core's refusal and changes nothing."""
    import hashlib

    from virtops.host import Host

    image = tmp_path / "upload.iso"
    with image.open("wb") as out:  # 1 MiB of data, a 3 MiB hole, 1 MiB of data
        out.write(bytes(range(256)) * 4096)
        out.seek(4 << 20)
        out.write(b"CD001" * 209715 + b"x")
    _open_wizard(page, "nvupload")
    page.select_option(f"{WIZARD} select[name=iso_pool]", POOL)
    page.set_input_files(f"{WIZARD} input[name=iso_file]", str(image))
    page.click("#vm-wizard-upload")
    expect(page.locator("#vm-wizard-upload-status")).to_have_text(f"uploaded upload.iso into pool {POOL}")
    expect(page.locator(f"{WIZARD} select[name=cdrom]")).to_have_value(f"{POOL}/upload.iso")
    pool = conn.storagePoolLookupByName(POOL)
    pool.refresh(0)
    vol = pool.storageVolLookupByName("upload.iso")
    assert vol.info()[1] == image.stat().st_size and vol.info()[2] < 4 << 20  # the hole stayed one
    copy = tmp_path / "copy.iso"
    host = Host(web_lab.uri)
    host.volumes.download(f"{POOL}/upload.iso", str(copy))
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(image.read_bytes()).digest()

    before = host_state(conn)
    with pytest.raises(VirtopsError) as cut_short:  # the browser went away midway: the new volume goes again
        host.volumes.upload_new(POOL, "short.iso", 2 << 20, iter([b"x" * 1024]))
    host.close()
    assert str(cut_short.value).endswith(f"nothing was kept (undone: created volume {POOL}/short.iso).")
    assert host_state(conn) == before
    page.click("#vm-wizard-upload")
    expect(page.locator("#error")).to_have_text(f"name: pool {POOL} already has a volume named 'upload.iso'; "
                                                "choose another name.")
    assert host_state(conn) == before
    _no_start(page)
    assert _summary(page)["Boots from"] == f"CD-ROM {POOL}/upload.iso"
    _finish_on_its_page(page, "nvupload", "shut off")
    cdrom = _config(conn, "nvupload").find("devices/disk[@device='cdrom']/source")
    assert cdrom.attrib == {"pool": POOL, "volume": "upload.iso"}


def test_import_of_an_existing_disk(page, conn):
    _open_wizard(page, "nvimport")
    page.check(f"{WIZARD} input[name=media][value=import]")
    page.select_option(f"{WIZARD} select[name=import_volume]", f"{POOL}/image")
    _no_start(page)
    assert _summary(page)["Boots from"] == f"its first disk ({POOL}/image)"
    _finish_on_its_page(page, "nvimport", "shut off")
    root = _config(conn, "nvimport")
    assert _boot_order(root) == ["hd"]
    disk = root.find("devices/disk")
    assert disk.find("source").attrib == {"pool": POOL, "volume": "image"}
    assert disk.find("driver").get("type") == "qcow2" and disk.find("target").get("dev") == "vda"


def test_pxe_with_a_screen_and_autostart(page, conn):
    _open_wizard(page, "nvpxe")
    page.check(f"{WIZARD} input[name=media][value=pxe]")
    _forward(page, "4.")
    page.click("#vm-wizard-add-new-disk")
    page.locator("#vm-wizard-disks [data-field=pool]").select_option(POOL)
    page.locator("#vm-wizard-disks [data-field=size]").fill("8M")
    expect(page.locator("#vm-wizard-disks [data-field=format]")).to_have_value(NEW_DISK_FORMAT)  # the CLI's --new-disk default
    _add_nic(page)
    page.click(f"{WIZARD} [data-next]")
    page.check(f"{WIZARD} input[name=graphics][value=vnc]")
    page.check(f"{WIZARD} input[name=autostart]")
    page.uncheck(f"{WIZARD} input[name=start]")
    summary = _summary(page)
    assert summary["Boots from"] == "the network (PXE), then its first disk"
    assert summary["Disks"] == f"new 8M {NEW_DISK_FORMAT} volume in pool {POOL}" and summary["Autostart"] == "yes"
    _finish_on_its_page(page, "nvpxe", "shut off")
    root = _config(conn, "nvpxe")
    assert _boot_order(root) == ["network", "hd"]
    assert root.find("devices/interface/source").get("network") == NETWORK
    assert root.find("devices/graphics").get("type") == "vnc"
    assert root.find("devices/disk/source").attrib == {"pool": POOL, "volume": f"nvpxe-vda.{NEW_DISK_FORMAT}"}
    assert conn.lookupByName("nvpxe").autostart() == 1


@pytest.mark.parametrize("name, memory, media, sentence", [
    (HOLDER, "256M", "kernel", f"name: a VM named {HOLDER} already exists; choose another name or delete it first."),
    ("nvbig", "64T", "cdrom", "memory: 64T is more than the host's"),
    ("nvnonic", "256M", "pxe", "pxe: boots from the network, so the VM needs a NIC; add one on a network or a bridge."),
])
def test_a_refused_create_shows_the_core_sentence(page, conn, name, memory, media, sentence):
    before = host_state(conn)
    _open_wizard(page, name)
    page.check(f"{WIZARD} input[name=media][value={media}]")
    if media == "kernel":
        page.fill(f"{WIZARD} input[name=kernel]", "/boot/nothing-here")
    page.click(f"{WIZARD} [data-next]")
    page.fill(f"{WIZARD} input[name=memory]", memory)
    _summary(page)
    page.click(f"{WIZARD} [data-finish]")
    expect(page.locator("#error")).to_contain_text(re.compile(re.escape(sentence)))
    expect(page.locator(WIZARD)).to_be_visible()  # the operator can go back and correct it
    assert host_state(conn) == before


def test_enter_moves_through_the_wizard_and_never_creates_early(page, conn):
    """Enter in each step's field is the next step (the step indicator says which), never a create:
    the host is unchanged at the summary, whose Finish has the focus; Escape leaves it as it was."""
    before = host_state(conn)
    page.click("#vm-new")
    now = page.locator(f"{WIZARD} .step-now")
    expect(page.locator(f"{WIZARD} input[name=name]")).to_be_focused()
    page.keyboard.type("nventer")
    steps = page.locator(f"{WIZARD} fieldset[data-step]").count()
    for step in range(2, steps + 1):
        page.keyboard.press("Enter")
        expect(now).to_contain_text(f"Step {step} of {steps}:")
        assert host_state(conn) == before, f"step {step}"
    expect(now).to_have_text(f"Step {steps} of {steps}: Summary")
    expect(page.locator(f"{WIZARD} [data-finish]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator(WIZARD)).to_be_hidden()
    expect(page.locator("#vm-new")).to_be_focused()
    assert host_state(conn) == before
