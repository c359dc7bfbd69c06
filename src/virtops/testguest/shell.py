"""Commands run on the test guest's serial console (its `shell` mode): what a test or the demo
asks the guest itself, e.g. its uptime to prove a moved guest is the same one, not a new boot."""
from __future__ import annotations

import re

from virtops.base.errors import VirtopsError


def run_in_guest(console, command: str, until: str, timeout_s: float = 90) -> str:
    """Type `command` on the console; the text printed up to a match of the regular expression
    `until` (write it so that the echoed command line cannot match, e.g. DONE-$((1+1)) for DONE-2)."""
    since = len(console.buffer)
    console.write(command.encode() + b"\n")
    text = console.wait_for(lambda text: re.search(until, text) is not None, timeout_s, since)
    if not re.search(until, text):
        raise VirtopsError(f"the guest did not answer {command!r} within {timeout_s:g} s (last output: {text[-300:]!r})")
    return text


def guest_uptime(console, timeout_s: float = 90) -> float:
    """Seconds since the guest booted, as its kernel counts them (/proc/uptime)."""
    text = run_in_guest(console, "echo UP=$(cut -d' ' -f1 /proc/uptime)=", r"UP=[0-9.]+=", timeout_s)
    return float(re.search(r"UP=([0-9.]+)=", text).group(1))
