"""A lab host's own LVM configuration, bound over /etc/lvm inside the lab's mount namespace.

libvirt's logical pools run LVM's commands (pvcreate, vgcreate, lvcreate, vgchange, vgremove) from
the lab's libvirtd, so inside the lab's mount namespace; there they read this configuration. It
sees only the devices given to the lab (none until `Lab.give_lvm_devices`), so a lab never scans,
lists or changes the machine's own disks; it keeps its metadata backups and archives in the lab's
state directory (LVM writes them under its system directory), its command locks there too, and
asks no daemon (lvmpolld, dmeventd) and no udev for anything. The machine's /etc/lvm, /run/lvm and
/run/lock/lvm are never written by a lab.
"""
from __future__ import annotations

import re
from pathlib import Path

from virtops.base.errors import InvalidInput

SYSTEM_DIR = "/etc/lvm"  # where LVM's commands read lvm.conf; only bound when the machine has it
DEVICE_PATTERN = re.compile(r"^/dev/[A-Za-z0-9_/-]+$")  # nothing a filter's regular expression reads specially

CONFIG = """\
# virtops lab host {name}: LVM sees only the devices given to this lab (lab/lvm.py)
devices {{
    filter = [ {accept}"r|.*|" ]
    global_filter = [ {accept}"r|.*|" ]
    use_devicesfile = 0
    hints = "none"
    obtain_device_list_from_udev = 0
}}
global {{
    use_lvmpolld = 0
    event_activation = 0
    locking_dir = "{lock_dir}"
}}
activation {{
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}}
"""


def config_text(name: str, devices: list[str], lock_dir: Path) -> str:
    """lvm.conf accepting exactly `devices` (whole paths, e.g. /dev/loop3) and rejecting every other."""
    for device in devices:
        if not DEVICE_PATTERN.match(device):
            raise InvalidInput("device", f"{device!r} is not a device path; give one such as /dev/loop3.")
    accept = "".join(f'"a|^{device}$|", ' for device in devices)
    return CONFIG.format(name=name, accept=accept, lock_dir=lock_dir)


def write_config(directory: Path, name: str, devices: list[str]) -> None:
    """The lab's LVM system directory (`directory`, bound over /etc/lvm), with its lock directory."""
    lock_dir = directory / "lock"
    lock_dir.mkdir(parents=True, exist_ok=True)
    text = config_text(name, devices, lock_dir)
    temporary = directory / "lvm.conf.tmp"
    temporary.write_text(text)
    temporary.replace(directory / "lvm.conf")  # an LVM command running meanwhile reads the old or the new one
