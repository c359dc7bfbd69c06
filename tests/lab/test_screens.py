"""A VM's screen: `vm create --graphics vnc` gives the test guest a VGA card, its screen mode writes the
kernel's text console there, and `vm screenshot` fetches it through libvirt's screenshot stream, from
this machine and over the remote protocol (qemu+tcp:// from the lab's outside namespace)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import cli_ok, run_cli
from tests.lab.test_remote import remote
from virtops.ops.screens import Picture, parse_png
from virtops.testguest.image import kernel_cmdline, wait_for_report

VM = "screen"


def screen_vm(lab, host, guest_image, name: str = VM):
    """A running test guest with a screen (shell mode on serial and on the screen); its serial console."""
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell', screen=True)}"
    cli_ok(lab.uri, "vm", "create", name, "--memory", "128M", "--graphics", "vnc", "--boot", boot, "--start")
    console = host.vms.console(name)
    wait_for_report(console, lambda r: True)
    return console


def lit(picture: Picture) -> int:
    """How many pixels are not the background (black)."""
    return sum(1 for i in range(0, len(picture.rgb), 3) if picture.rgb[i:i + 3] != b"\0\0\0")


def differing(one: Picture, other: Picture) -> int:
    return sum(1 for i in range(0, len(one.rgb), 3) if one.rgb[i:i + 3] != other.rgb[i:i + 3])


def shot(lab, tmp_path, *options: str, via=cli_ok) -> Picture:
    path = tmp_path / "screen.png"
    if via is cli_ok:
        cli_ok(lab.uri, "vm", "screenshot", VM, "-o", str(path), *options)
    else:
        result = via(lab, "vm", "screenshot", VM, "-o", str(path), *options)
        assert result.returncode == 0, result.stderr
    return parse_png(path.read_bytes())


def say(console, text: str, done: str) -> None:
    since = len(console.buffer)
    console.write(f"{text}; echo {done}\n".encode())
    console.wait_for(lambda t: f"\n{done}" in t, 60, since)


@pytest.fixture
def screen_guest(uplink_lab, guest_image):
    from virtops.host import Host

    host = Host(uplink_lab.uri)
    console = screen_vm(uplink_lab, host, guest_image)
    try:
        yield console
    finally:
        console.close()
        dom = host.conn.lookupByName(VM)
        dom.destroy()
        dom.undefine()
        host.close()


def test_screenshot_shows_the_guests_text_console(uplink_lab, screen_guest, tmp_path):
    lab, console = uplink_lab, screen_guest
    root = cli_ok(lab.uri, "vm", "dumpxml", VM)
    assert "<graphics type='vnc'" in root and "listen='127.0.0.1'" in root and "<model type='vga'" in root

    booted = shot(lab, tmp_path)
    blank = Picture(booted.width, booted.height, bytes(len(booted.rgb)))
    assert (booted.width, booted.height) == (720, 400)  # VGA text mode, 80x25 characters of 9x16
    assert booted.rgb != blank.rgb and lit(booted) > 2000, lit(booted)  # lines of kernel text, not a blank frame

    # The guest clears its screen: nearly blank; then prints 20 lines: text again, a new picture.
    say(console, "printf '\\033[2J\\033[H' > /dev/tty1", "cleared")
    cleared = shot(lab, tmp_path)
    say(console, "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo line $i of the screen test "
                 "> /dev/tty1; done", "printed")
    printed = shot(lab, tmp_path)
    assert lit(cleared) < lit(booted) / 4 and lit(printed) > 4 * max(lit(cleared), 1), (lit(cleared), lit(printed))
    assert printed.rgb != booted.rgb

    # The same screen over the remote protocol, and a thumbnail.
    remote_shot = shot(lab, tmp_path, via=remote)
    assert differing(remote_shot, printed) < 9 * 16  # the same picture, but for the blinking cursor
    thumb = shot(lab, tmp_path, "--width", "180")
    assert (thumb.width, thumb.height) == (180, 100) and lit(thumb) > 0


def test_screenshot_refusals(uplink_lab, tmp_path):
    lab = uplink_lab
    cli_ok(lab.uri, "vm", "create", "blind", "--memory", "64M")
    try:
        stopped = run_cli("vm", "screenshot", "blind", "-o", str(tmp_path / "x.png"), uri=lab.uri)
        assert stopped.returncode == 1 and "VM blind is not running" in stopped.stderr, stopped.stderr
        missing = run_cli("vm", "screenshot", "nosuchvm", "-o", str(tmp_path / "x.png"), uri=lab.uri)
        assert missing.returncode == 1 and "no domain named 'nosuchvm'" in missing.stderr
        assert not (tmp_path / "x.png").exists()
        assert json.loads(cli_ok(lab.uri, "vm", "list", "--all", "--json"))[0]["name"] == "blind"
    finally:
        cli_ok(lab.uri, "vm", "delete", "blind")


def test_a_vm_without_a_screen_is_refused(lab, host, guest_image, tmp_path):
    boot = f"kernel={guest_image.kernel},initrd={guest_image.initrd},cmdline={kernel_cmdline('shell')}"
    cli_ok(lab.uri, "vm", "create", "noscreen", "--memory", "64M", "--boot", boot, "--start")
    try:
        result = run_cli("vm", "screenshot", "noscreen", "-o", str(tmp_path / "x.png"), uri=lab.uri)
        assert result.returncode == 1 and "has no screen" in result.stderr and "--graphics vnc" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        cli_ok(lab.uri, "vm", "delete", "noscreen", "--force")
