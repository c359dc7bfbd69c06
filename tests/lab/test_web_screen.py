"""A VM's screen in the web console, in a real Chromium: the thumbnail, noVNC over the WebSocket that
`serve` joins to the guest's VNC display (libvirt's openGraphicsFD: no VNC port is opened), the
picture following what the guest prints, keys typed on the canvas reaching the guest's shell,
Ctrl-Alt-Del; and the WebSocket's login and same-origin checks (those of the serial console)."""
from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import WEB_PASSWORD
from tests.lab.test_screens import lit
from virtops.ops.domain import DomainSpec, KernelBoot
from virtops.ops.screens import Picture, parse_png
from virtops.testguest.image import kernel_cmdline, wait_for_report

VM = "screenvm"


@pytest.fixture
def screen_guest(web_lab, guest_image):
    from virtops.host import Host

    host = Host(web_lab.uri)
    boot = KernelBoot(kernel=str(guest_image.kernel), initrd=str(guest_image.initrd),
                      cmdline=kernel_cmdline("shell", screen=True))
    spec = DomainSpec(name=VM, virt_type=host.virt_type(), memory_mib=128, boot=boot, graphics="vnc")
    dom = host.conn.defineXML(spec.to_xml())
    dom.create()
    console = host.vms.console(VM)
    try:
        wait_for_report(console, lambda r: True)
        yield console
    finally:
        console.close()
        dom.destroy()
        dom.undefine()
        host.close()


# Playwright's keyboard.type sends "$" as the key Digit4 (and "S" as KeyS) without pressing Shift, and noVNC passes
# QEMU the key (its scancode), not the character: shifted characters are typed as a person does.
SHIFTED = {"$": "Digit4", "(": "Digit9", ")": "Digit0", "*": "Digit8", ">": "Period"}


def type_keys(page, text: str) -> None:
    for char in text:
        if char in SHIFTED or char.isupper():
            page.keyboard.press(f"Shift+{SHIFTED.get(char) or 'Key' + char}")
        else:
            page.keyboard.type(char)


def canvas_picture(page) -> Picture:
    return parse_png(page.locator("#vm-screen canvas").screenshot())


def test_the_guest_screen_in_novnc(page, screen_guest):
    console = screen_guest
    page.goto(f"/vms/{VM}/console")
    thumbnail = page.locator("#vm-screen img.vm-thumbnail")
    expect(thumbnail).to_be_visible()
    assert lit(parse_png(thumbnail.screenshot())) > 200  # the boot text, shrunk

    page.get_by_role("button", name="Screen", exact=True).click()
    expect(page.locator("#vm-screen .vm-screen-status")).to_have_text("connected")
    canvas = page.locator("#vm-screen canvas")
    expect(canvas).to_be_visible()
    page.wait_for_timeout(1500)  # the first full frame
    booted = canvas_picture(page)
    blank = Picture(booted.width, booted.height, bytes(len(booted.rgb)))
    assert booted.rgb != blank.rgb and lit(booted) > 1000, lit(booted)

    # The guest clears its screen, then prints: the canvas follows.
    console.write(b"printf '\\033[2J\\033[H' > /dev/tty1\n")
    page.wait_for_timeout(1500)
    cleared = canvas_picture(page)
    console.write(b"for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo the canvas follows line $i > /dev/tty1; done\n")
    page.wait_for_timeout(1500)
    printed = canvas_picture(page)
    assert lit(cleared) < lit(booted) / 3 and lit(printed) > 3 * max(lit(cleared), 1), (lit(cleared), lit(printed))

    # Keys typed on the canvas reach the shell on the guest's screen, which answers on its serial line.
    since = len(console.buffer)
    canvas.click()
    type_keys(page, "echo vnc-$((6*7)) > /dev/ttyS0")
    page.keyboard.press("Enter")
    assert "vnc-42" in console.wait_for(lambda text: "vnc-42" in text, 60, since)

    # Ctrl-Alt-Del: with ctrl-alt-del set to 1 the guest's kernel reboots at once, and boots again.
    console.write(b"echo 1 > /proc/sys/kernel/ctrl-alt-del\n")
    page.wait_for_timeout(500)
    since = len(console.buffer)
    page.get_by_role("button", name="Send Ctrl-Alt-Del").click()
    rebooted = console.wait_for(lambda text: "VIRTOPS-BEGIN" in text, 120, since)
    assert "VIRTOPS-BEGIN" in rebooted, rebooted[-500:]
    page.get_by_role("button", name="Close screen").click()


def test_display_websocket_needs_login_and_our_own_origin(web_server, screen_guest):
    from websockets.sync.client import connect

    from tests.helpers import websocket_close_code

    with httpx.Client(base_url=web_server, timeout=60) as client:
        assert client.post("/login", json={"password": WEB_PASSWORD}).status_code == 200
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        assert client.get(f"/api/vms/{VM}/screenshot").headers["content-type"] == "image/png"
        assert client.get("/api/vms/nosuchvm/screenshot").status_code == 404
    with httpx.Client(base_url=web_server) as anonymous:
        assert anonymous.get(f"/api/vms/{VM}/screenshot").status_code == 401

    url = web_server.replace("http://", "ws://") + f"/api/vms/{VM}/vnc"

    def closed_with(headers: dict, path: str = url) -> int:
        return websocket_close_code(path, headers)

    assert closed_with({}) == 4401
    assert closed_with({"Cookie": cookie, "Origin": "http://evil.example"}) == 4403
    assert closed_with({"Cookie": cookie, "Origin": web_server}, url.replace(VM, "nosuchvm")) == 4409
    # From our own page: the RFB greeting of QEMU's VNC server, through libvirt's file descriptor.
    with connect(url, additional_headers={"Cookie": cookie, "Origin": web_server}) as socket:
        assert socket.recv(timeout=20).startswith(b"RFB 003.008")
