"""Migrate from the VM page of the fleet's console, in Chromium: three lab hosts on one segment, two
sharing the handbook's NFS pool. The chooser offers the host that can take the running guest and
shows the pre-flight's sentence for the one that cannot; the move runs live with its progress on
the page and the guest runs on at the destination."""
from __future__ import annotations

import os

import libvirt
import pytest
from playwright.sync_api import expect

from tests.conftest import WEB_PASSWORD
from tests.helpers import cli_ok, fresh_labs, serve_process
from virtops.testguest.image import kernel_cmdline

TOKEN = str(os.getpid() % 100000)
NAMES = [f"pytest-wm{i}-{TOKEN}" for i in range(3)]
HOSTS = [f"lab:{name}" for name in NAMES]
expect.set_options(timeout=60_000)  # a TCG guest boots and moves on two loaded cores


@pytest.fixture(scope="module")
def labs():
    """The first two share the nfs pool; the third, on the same segment, has no such pool."""
    with fresh_labs(NAMES, segment=f"wm-{TOKEN}") as labs:
        for lab in labs[:2]:
            cli_ok(lab.uri, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254",
                   "--source-path", "/nfs", "--target", "/var/lib/libvirt/nfs")
        yield labs


WEB_START = "/fleet"  # where conftest's logged-in page starts: the fleet's overview


@pytest.fixture(scope="module")
def web_base(labs, tmp_path_factory):
    """`virtops -H ... serve` over the three labs: conftest's page logs in on it."""
    password_file = tmp_path_factory.mktemp("fleetmigrate") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    with serve_process(f"-H {','.join(HOSTS)}", password_file) as base:
        yield base


def test_migrate_from_the_page_shows_why_a_host_cannot_and_moves_live(page, labs, guest_image):
    source, destination = labs[0], labs[1]
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}"
    cli_ok(source.uri, "vol", "create", "nfs", "traveller", "--capacity", "16M", "--format", "raw")
    cli_ok(source.uri, "vm", "create", "traveller", "--memory", "128M", "--vcpus", "1", "--disk", "nfs/traveller",
           "--boot", boot, "--start")
    page.goto(f"/hosts/{HOSTS[0]}/vms")
    page.locator("#vms tr[data-name=traveller]").get_by_role("link", name="traveller").click()
    page.locator("#vm-actions").get_by_role("button", name="Migrate").click()
    expect(page.locator("#migrate")).to_be_visible()
    expect(page.locator("#migrate-form select[name=to] option")).to_have_count(2)
    expect(page.locator(f"#migrate-form option[value='{HOSTS[1]}']")).not_to_have_attribute("disabled", "")
    expect(page.locator(f"#migrate-form option[value='{HOSTS[2]}']")).to_have_attribute("disabled", "")
    expect(page.locator(f"#migrate-reasons li[data-host='{HOSTS[2]}']")).to_contain_text("nfs")
    expect(page.locator("#migrate-form select[name=to]")).to_have_value(HOSTS[1])
    page.click("#migrate-move")
    expect(page.locator("#migrate-status")).to_have_attribute("data-state", "moved")
    expect(page.locator("#migrate-status")).to_contain_text(f"traveller moved live to {HOSTS[1]}")
    for lab, there in ((source, False), (destination, True)):
        conn = libvirt.open(lab.uri)
        try:
            names = {dom.name(): dom.isActive() for dom in conn.listAllDomains()}
        finally:
            conn.close()
        assert names.get("traveller") == (True if there else None), (lab.name, names)
    page.goto(f"/hosts/{HOSTS[1]}/vms")
    expect(page.locator("#vms tr[data-name=traveller]")).to_contain_text("running")


def test_a_move_started_elsewhere_shows_its_progress_on_the_vm_page_live(page, labs):
    """The guest moved above goes back, started by the CLI (another client than the console) at
    2 MiB/s with 40 MiB of its memory dirtied: its page, open before the move, shows the job and
    its progress rising without a reload, then that the VM is no longer on this host."""
    import subprocess
    import sys

    from virtops.host import Host
    from virtops.testguest.shell import run_in_guest

    here, back = labs[1], labs[0]
    host = Host(here.uri)
    try:
        console = host.vms.console("traveller", force=True)
        try:  # its root is its initramfs, in RAM: the move then has 40 MiB that are not zero pages
            run_in_guest(console, "dd if=/dev/urandom of=/fill bs=1048576 count=40 2>/dev/null; echo FILLED-$((1+1))",
                         "FILLED-2")
        finally:
            console.close()
    finally:
        host.close()
    page.goto(f"/hosts/{HOSTS[1]}/vms/traveller")
    expect(page.locator("#vm-facts [data-fact=State]")).to_have_text("running")
    page.evaluate("window.__marker = 'same page'")
    job = page.locator("#vm-job")
    expect(job).to_be_hidden()
    move = subprocess.Popen([sys.executable, "-m", "virtops", "-c", here.uri, "vm", "migrate", "traveller",
                             "--to", f"lab:{back.name}", "--bandwidth", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        expect(job).to_have_attribute("data-operation", "move")
        expect(job).to_contain_text("memory")
        bar = job.locator("progress")
        first = int(bar.get_attribute("value"))
        expect(bar).not_to_have_attribute("value", str(first))  # it rises, the page not reloaded
        assert int(bar.get_attribute("value")) > first
        out, err = move.communicate(timeout=300)  # however long the move takes on this machine
    finally:
        if move.poll() is None:
            move.kill()
    assert move.returncode == 0, out + err
    expect(page.locator("#object-gone")).to_contain_text("is no longer on this host", timeout=20_000)
    assert page.evaluate("window.__marker") == "same page"
    page.goto(f"/hosts/{HOSTS[0]}/vms")
    expect(page.locator("#vms tr[data-name=traveller]")).to_contain_text("running")
