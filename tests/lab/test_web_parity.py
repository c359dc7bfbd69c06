"""What the CLI can do, done in the web console (issue 15 point 6), in a real Chromium against
`virtops serve` on a lab host: autostart toggles, a VM's settings, a volume's resize, clone, wipe,
upload and download (a sparse image through the browser and back: same sha256, holes stay holes),
delete with storage, a network's static DHCP hosts and a dir pool's permissions. Each result is
read back through libvirt; each refusal shows the core's sentence with the host unchanged."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading

import libvirt
import pytest
from playwright.sync_api import expect

from tests.conftest import web_conn
from tests.helpers import dir_pool_element, host_state, volume_element
from virtops.base.errors import VirtopsError
from virtops.host import Host
from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.xmlmodels import doc as X

expect.set_options(timeout=20_000)  # locator assertions: the pages' CSP refuses wait_for_function
POOL, NET, VM = "paritypool", "paritynet", "parityvm"
MIB = 1 << 20


WEB_START = "/pools"  # where conftest's logged-in page starts
conn = web_conn  # libvirt on the web lab (conftest)


@pytest.fixture(scope="module", autouse=True)
def objects(conn):
    """A dir pool with a VM's disk and two spare volumes, a network, a stopped VM: made through
    libvirt, so only the console's own actions are under test."""
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(POOL)))
    pool.build(0)
    pool.create(0)
    for name, capacity in (("sys", 16 * MIB), ("data", 16 * MIB), ("image", 64 * MIB)):
        pool.createXML(X.to_string(volume_element(name, capacity, "raw")))
    conn.networkDefineXML(
        f"<network><name>{NET}</name><forward mode='nat'/><ip address='192.168.231.1' netmask='255.255.255.0'>"
        "<dhcp><range start='192.168.231.128' end='192.168.231.254'/></dhcp></ip>"
        "<ip family='ipv6' address='fd00:231::1' prefix='64'/></network>").create()
    conn.defineXML(DomainSpec(name=VM, virt_type="qemu", disks=[DiskSpec(target="vda", pool=POOL, volume="sys")]).to_xml())


def dialog(page):
    return page.locator("#parity-dialog")


def submit(page) -> None:
    dialog(page).locator("button[type=submit]").click()


def refused(page, sentence: str) -> None:
    expect(dialog(page).locator(".error")).to_have_text(sentence)


def open_volumes(page):
    page.goto("/pools")
    page.locator(f"#pools tr[data-name={POOL}]").get_by_role("link", name=POOL, exact=True).click()
    page.get_by_role("tab", name="Volumes").click()
    return lambda name: page.locator(f"#volumes tr[data-name={name}]")


def volume_sha256(uri: str, ref: str, tmp_path) -> str:
    host = Host(uri)
    try:
        target = tmp_path / f"read-{ref.replace('/', '_')}"
        host.volumes.download(ref, str(target), overwrite=True)
        return hashlib.sha256(target.read_bytes()).hexdigest()
    finally:
        host.close()


def test_autostart_toggles_of_pool_network_and_vm(page, conn):
    box = page.locator(f"#pools tr[data-name={POOL}] input[data-autostart]")
    expect(box).not_to_be_checked()
    box.check()
    expect(box).to_be_enabled()
    assert conn.storagePoolLookupByName(POOL).autostart() == 1

    page.goto("/networks")
    box = page.locator(f"#networks tr[data-name={NET}] input[data-autostart]")
    box.check()
    expect(box).to_be_enabled()
    assert conn.networkLookupByName(NET).autostart() == 1
    box.uncheck()
    expect(box).to_be_enabled()
    assert conn.networkLookupByName(NET).autostart() == 0

    page.goto("/vms")
    page.locator(f"#vms tr[data-name={VM}]").get_by_role("link", name=VM, exact=True).click()
    page.get_by_label(f"autostart vm {VM}").check()
    expect(page.get_by_label(f"autostart vm {VM}")).to_be_enabled()
    assert conn.lookupByName(VM).autostart() == 1


def test_vm_settings_change_memory_vcpus_and_boot_order_and_refuse_what_the_host_lacks(page, conn, web_lab):
    page.goto("/vms")
    page.locator(f"#vms tr[data-name={VM}]").get_by_role("link", name=VM, exact=True).click()
    page.locator("#vm-actions").get_by_role("button", name="Settings…").click()
    cpus = conn.getInfo()[2]
    before = host_state(conn)
    dialog(page).locator("input[name=vcpus]").fill(str(cpus + 1))
    submit(page)
    expect(dialog(page).locator(".error")).to_contain_text("vcpus")
    expect(dialog(page).locator(".error")).to_contain_text(str(cpus))
    assert host_state(conn) == before

    dialog(page).locator("input[name=vcpus]").fill("2")
    dialog(page).locator("input[name=memory]").fill("200M")
    submit(page)
    expect(dialog(page).locator(".outcome")).to_have_text("Changed: memory 200.00 MiB, vcpus 2.")
    root = X.parse(conn.lookupByName(VM).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert root.findtext("vcpu") == "2" and int(root.findtext("memory")) == 200 * 1024

    boots = lambda: [b.get("dev") for b in X.parse(conn.lookupByName(VM).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).findall("os/boot")]
    before = host_state(conn)
    dialog(page).locator("input[name=boot_order]").fill("hd,floppy")
    submit(page)
    refused(page, "boot_order: 'floppy' is no boot device; give devices from hd, cdrom, network, fd in the order to try them, "
                  "such as cdrom,hd.")
    assert host_state(conn) == before
    dialog(page).locator("input[name=boot_order]").fill("network,hd")
    submit(page)
    expect(dialog(page).locator(".outcome")).to_have_text("Changed: boot order network,hd.")
    assert boots() == ["network", "hd"]
    # The CLI's vm set takes the same order (one core function).
    cli = subprocess.run([sys.executable, "-m", "virtops", "-c", web_lab.uri, "vm", "set", VM, "--boot-order", "cdrom,hd"],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.startswith(f"VM {VM}: boot order cdrom,hd."), cli.stderr
    assert boots() == ["cdrom", "hd"]


def test_volume_upload_and_download_round_trip_keeps_holes(page, conn, web_lab, tmp_path):
    """A 64 MiB sparse image with 3 MiB of data goes up through the browser (a progress bar) and
    comes back as a normal download: the same bytes, and the volume holds only its data."""
    image = tmp_path / "sparse.img"
    with open(image, "wb") as out:
        out.truncate(64 * MIB)
        for offset in (0, 20 * MIB, 64 * MIB - MIB):
            out.seek(offset)
            out.write(os.urandom(MIB))
    row = open_volumes(page)
    row("image").get_by_role("button", name="Upload…").click()
    dialog(page).locator("input[type=file]").set_input_files(str(image))
    submit(page)
    expect(dialog(page).locator(".outcome")).to_have_text("Uploaded sparse.img: 64.00 MiB, 3.00 MiB of data written.")
    bar = dialog(page).get_by_label("upload progress")
    expect(bar).to_have_js_property("value", 64 * MIB)
    vol = conn.storagePoolLookupByName(POOL).storageVolLookupByName("image")
    assert vol.info()[2] <= 4 * MIB  # allocation: the data, not the holes

    dialog(page).get_by_role("button", name="Close").click()
    with page.expect_download() as download:
        row("image").get_by_role("link", name="Download").click()
    saved = tmp_path / "downloaded.img"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "image"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(image.read_bytes()).hexdigest()
    answer = page.request.get(f"/api/pools/{POOL}/volumes/image/content")  # raw: its length said up front
    assert answer.headers["content-length"] == str(64 * MIB) and len(answer.body()) == 64 * MIB

    # A file larger than the volume is refused before anything is written.
    big = tmp_path / "big.img"
    with open(big, "wb") as out:
        out.truncate(65 * MIB)
    before = host_state(conn)
    row("data").get_by_role("button", name="Upload…").click()
    dialog(page).locator("input[type=file]").set_input_files(str(big))
    submit(page)
    refused(page, f"file: big.img is 65.00 MiB, larger than volume {POOL}/data (16.00 MiB); resize the volume first.")
    assert host_state(conn) == before


def test_volume_resize_clone_and_wipe(page, conn, web_lab, tmp_path):
    row = open_volumes(page)
    before = host_state(conn)
    row("data").get_by_role("button", name="Resize…").click()
    dialog(page).locator("input[name=size]").fill("8M")
    submit(page)
    refused(page, 'size: 8.00 MiB is smaller than the capacity 16.00 MiB; give "shrink": true to shrink it (data past the '
                  'new end is lost).')
    assert host_state(conn) == before
    dialog(page).get_by_role("button", name="Go ahead: Allow shrinking (data past the new end is lost)").click()  # the core's way out
    expect(dialog(page)).to_have_count(0)
    assert conn.storagePoolLookupByName(POOL).storageVolLookupByName("data").info()[1] == 8 * MIB
    row("data").get_by_role("button", name="Resize…").click()
    dialog(page).locator("input[name=size]").fill("32M")
    submit(page)
    expect(dialog(page)).to_have_count(0)
    assert conn.storagePoolLookupByName(POOL).storageVolLookupByName("data").info()[1] == 32 * MIB

    uploaded = volume_sha256(web_lab.uri, f"{POOL}/image", tmp_path)
    row("image").get_by_role("button", name="Clone…").click()
    dialog(page).locator("input[name=name]").fill("copy")
    submit(page)
    expect(row("copy")).to_be_visible()
    assert volume_sha256(web_lab.uri, f"{POOL}/copy", tmp_path) == uploaded

    row("copy").get_by_role("button", name="Wipe…").click()
    submit(page)
    expect(dialog(page)).to_have_count(0)
    assert volume_sha256(web_lab.uri, f"{POOL}/copy", tmp_path) == hashlib.sha256(bytes(64 * MIB)).hexdigest()

    before = host_state(conn)  # the VM's own disk: the core names the VM that uses it
    row("sys").get_by_role("button", name="Wipe…").click()
    submit(page)
    expect(dialog(page).locator(".error")).to_contain_text(f"volume {POOL}/sys is used by VM(s) {VM}")
    expect(dialog(page).locator("[data-way-out=force]")).to_have_text("Go ahead: Even though VMs use it")
    assert host_state(conn) == before


def test_a_volume_being_uploaded_is_neither_given_to_a_vm_nor_changed(web_lab, objects, conn):
    """The host's lock covers an upload's check and clearing only; for the transfer the volume is
    marked (base/hostlock.writing_volume), and what would hand it to a guest or change it under the
    writer is refused naming the upload, in this process and in another (the CLI)."""
    from virtops.ops.devices import DiskRequest

    started, finish = threading.Event(), threading.Event()

    def pieces():
        yield os.urandom(MIB)
        started.set()
        finish.wait(60)
        yield bytes(MIB)

    uploader, other = Host(web_lab.uri), Host(web_lab.uri)
    upload = threading.Thread(target=uploader.volumes.upload_chunks, args=(f"{POOL}/data", 2 * MIB, pieces()))
    upload.start()
    try:
        assert started.wait(60)
        before = host_state(conn)
        busy = f"volume {POOL}/data is being written by vol upload (pid {os.getpid()}) right now"
        for attempt in (lambda: other.vms.attach_disk(VM, DiskRequest(volume=f"{POOL}/data")),
                        lambda: other.volumes.wipe(f"{POOL}/data"), lambda: other.volumes.delete(f"{POOL}/data"),
                        lambda: other.volumes.resize(f"{POOL}/data", "64M"), lambda: other.volumes.download_chunks(f"{POOL}/data"),
                        lambda: other.volumes.upload_chunks(f"{POOL}/data", 1, iter([b"x"]))):
            with pytest.raises(VirtopsError, match=re.escape(busy)):
                attempt()
        cli = subprocess.run([sys.executable, "-m", "virtops", "-c", web_lab.uri, "vol", "delete", f"{POOL}/data"],
                             capture_output=True, text=True)
        assert cli.returncode == 1 and busy in cli.stderr, cli.stderr
        assert host_state(conn) == before
    finally:
        finish.set()
        upload.join(60)
    assert other.volumes.info(f"{POOL}/data").allocation >= MIB  # the upload finished; the mark is gone
    other.vms.attach_disk(VM, DiskRequest(volume=f"{POOL}/data"))
    other.vms.detach_disk(VM, "vdb")
    uploader.close()
    other.close()


def test_network_static_dhcp_hosts(page, conn):
    page.goto("/networks")
    page.locator(f"#networks tr[data-name={NET}]").get_by_role("button", name="DHCP hosts…").click()
    dialog(page).locator("input[name=mac]").fill("52:54:00:31:00:01")
    dialog(page).locator("input[name=ip]").fill("192.168.231.10")
    dialog(page).locator("input[name=hostname]").fill("guest1")
    submit(page)
    expect(dialog(page).locator("tr[data-mac='52:54:00:31:00:01']")).to_contain_text("192.168.231.10")
    host = X.parse(conn.networkLookupByName(NET).XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)).find("ip/dhcp/host")
    assert host.attrib == {"mac": "52:54:00:31:00:01", "name": "guest1", "ip": "192.168.231.10"}

    before = host_state(conn)
    dialog(page).locator("input[name=mac]").fill("52:54:00:31:00:02")
    dialog(page).locator("input[name=ip]").fill("192.168.99.10")
    submit(page)
    refused(page, "ip: 192.168.99.10 is outside the subnet 192.168.231.0/24; give an address in 192.168.231.1-192.168.231.254.")
    dialog(page).locator("input[name=ip]").fill("192.168.231.10")
    submit(page)
    expect(dialog(page).locator(".error")).to_contain_text("192.168.231.10")  # taken by 52:54:00:31:00:01
    assert host_state(conn) == before

    dialog(page).get_by_role("button", name="remove 52:54:00:31:00:01").click()
    expect(dialog(page).locator("tr[data-mac]")).to_have_count(0)
    assert X.parse(conn.networkLookupByName(NET).XMLDesc(0)).find("ip/dhcp/host") is None

    # Hosts as other tools make them: one known by name only (virsh net-update adds one so), listed as
    # one, its address taken; an IPv6 one by DUID. Each has its Remove button, which removes it.
    net = conn.networkLookupByName(NET)
    live = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | (libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE if net.isActive() else 0)
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
               "<host name='printer' ip='192.168.231.20'/>", live)
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, 1,
               "<host id='0:3:0:1:52:54:0:31:0:4' ip='fd00:231::10'/>", live)
    page.goto("/networks")
    page.locator(f"#networks tr[data-name={NET}]").get_by_role("button", name="DHCP hosts…").click()
    printer = dialog(page).locator("tr[data-ip='192.168.231.20'] td")
    expect(printer.first).to_have_text("its name only (printer)")
    expect(dialog(page).locator("tr[data-ip='fd00:231::10'] td").first).to_have_text("DUID 0:3:0:1:52:54:0:31:0:4")
    before = host_state(conn)
    dialog(page).locator("input[name=mac]").fill("52:54:00:31:00:03")
    dialog(page).locator("input[name=ip]").fill("192.168.231.20")
    submit(page)
    refused(page, "ip: 192.168.231.20 is already given to the host named printer; choose another address in "
                  "192.168.231.1-192.168.231.254.")
    assert host_state(conn) == before
    for label, address in (("remove printer 192.168.231.20", "192.168.231.20"),
                           ("remove 0:3:0:1:52:54:0:31:0:4 fd00:231::10", "fd00:231::10")):
        dialog(page).get_by_role("button", name=label).click()
        expect(dialog(page).locator(f"tr[data-ip='{address}']")).to_have_count(0)
        for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE):
            assert X.parse(net.XMLDesc(flags)).find(f"ip/dhcp/host[@ip='{address}']") is None
    expect(dialog(page).get_by_role("button", name="Remove")).to_have_count(0)


def test_dir_pool_permissions(page, conn):
    row = page.locator(f"#pools tr[data-name={POOL}]")
    row.get_by_role("button", name="Permissions…").click()
    before = host_state(conn)
    submit(page)  # as the pool has them: nothing is sent to change, and the pool is not restarted for it
    refused(page, "mode: nothing to change; give the mode, owner or group to set.")
    assert host_state(conn) == before
    dialog(page).locator("input[name=mode]").fill("999")
    submit(page)
    expect(dialog(page).locator(".error")).to_contain_text("999")
    assert host_state(conn) == before
    dialog(page).locator("input[name=mode]").fill("0700")
    submit(page)  # applied, and the core's warning shown: QEMU can no longer reach the disks in it
    expect(dialog(page).locator(".outcome")).to_contain_text("mode 0700")
    expect(dialog(page).locator(".outcome")).to_contain_text("Warning: ")
    dialog(page).locator("input[name=mode]").fill("0755")
    submit(page)
    expect(dialog(page).locator(".outcome")).to_contain_text("mode 0755")
    assert X.parse(conn.storagePoolLookupByName(POOL).XMLDesc(0)).findtext("target/permissions/mode") == "0755"


def test_vm_delete_with_storage_lists_and_removes_its_volumes(page, conn):
    pool = conn.storagePoolLookupByName(POOL)
    conn.defineXML(DomainSpec(name="paritytwin", virt_type="qemu",
                              disks=[DiskSpec(target="vda", pool=POOL, volume="sys")]).to_xml())  # shares sys
    page.goto("/vms")
    page.locator(f"#vms tr[data-name={VM}]").get_by_role("link", name=VM, exact=True).click()
    page.locator("#vm-actions").get_by_role("button", name="Remove with storage…").click()
    expect(dialog(page).locator(".refused")).to_contain_text(f"volume {POOL}/sys of {VM} is also used by paritytwin")
    expect(dialog(page).locator("input[name=remove_storage]")).to_be_disabled()
    dialog(page).get_by_role("button", name="Close").click()
    conn.lookupByName("paritytwin").undefine()

    page.locator("#vm-actions").get_by_role("button", name="Remove with storage…").click()
    expect(dialog(page).locator("li[data-volume]")).to_have_text([f"{POOL}/sys"])
    dialog(page).locator("input[name=remove_storage]").check()
    submit(page)
    expect(page.locator("#object-gone")).to_contain_text("is no longer on this host")  # the VM's page says so
    assert VM not in [d.name() for d in conn.listAllDomains()]
    assert "sys" not in pool.listVolumes()


def test_a_running_vm_keeps_its_memory_until_its_next_boot_and_is_removed_only_when_told(page, conn):
    """Settings of a running VM change its definition, not the running guest (the dialog says so);
    deleting it with its storage is refused until the core's way out (stop it at once) is taken."""
    pool = conn.storagePoolLookupByName(POOL)
    pool.createXML(X.to_string(volume_element("runsys", 16 * MIB, "raw")))
    conn.defineXML(DomainSpec(name="parityrun", virt_type="qemu", memory_mib=256,
                              disks=[DiskSpec(target="vda", pool=POOL, volume="runsys")]).to_xml()).create()
    page.goto("/vms")
    page.locator("#vms tr[data-name=parityrun]").get_by_role("link", name="parityrun", exact=True).click()
    page.locator("#vm-actions").get_by_role("button", name="Settings…").click()
    dialog(page).locator("input[name=memory]").fill("300M")
    submit(page)
    expect(dialog(page).locator(".outcome")).to_have_text(
        "Changed: memory 300.00 MiB. memory 300.00 MiB: takes effect at its next boot; it is not rebooted.")
    dom = conn.lookupByName("parityrun")
    assert int(X.parse(dom.XMLDesc(0)).findtext("currentMemory")) == 256 * 1024  # the running guest's
    assert int(X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).findtext("memory")) == 300 * 1024
    dialog(page).get_by_role("button", name="Close").click()

    page.locator("#vm-actions").get_by_role("button", name="Remove with storage…").click()
    expect(dialog(page).locator("li[data-volume]")).to_have_text([f"{POOL}/runsys"])
    dialog(page).locator("input[name=remove_storage]").check()
    before = host_state(conn)
    submit(page)
    refused(page, 'vm: parityrun is running; shut it down first, or give "force": true to stop it at once and delete '
                  'it anyway.')
    assert host_state(conn) == before and dom.isActive()
    dialog(page).get_by_role("button", name="Go ahead: Stop parityrun at once").click()
    expect(page.locator("#object-gone")).to_contain_text("is no longer on this host")  # the VM's page says so
    assert "parityrun" not in [d.name() for d in conn.listAllDomains()] and "runsys" not in pool.listVolumes()
