"""Where a lab host lives and how a client reaches it: the rule for its name, its state directory,
its daemon's socket and URI. Plain strings and the standard library's os and re only, so that
`-c lab:NAME` resolves before a listing without importing the rest of the lab (labhost.py and
what it imports cost a listing more than virsh takes for all of it)."""
from __future__ import annotations

import os

from virtops.base.names import check_lab_name as check_name

DEFAULT_ROOT = "/var/lib/virtops/labs"


def lab_root() -> str:
    return os.environ.get("VIRTOPS_LAB_ROOT", DEFAULT_ROOT)


def state_dir(name: str, root: str | os.PathLike | None = None) -> str:
    """The lab's state directory, spelt as pathlib spells it (one '/' between parts, no '.' part,
    no trailing '/'), so that its URI is the same string whoever builds it (locks are per URI)."""
    path = os.path.join(os.fspath(root) if root else lab_root(), check_name(name))
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def socket_path(directory: str) -> str:
    return f"{directory}/run/libvirt-sock"


def uri_at(directory: str) -> str:
    """The URI of the daemon of the lab whose state directory this is."""
    return f"qemu+unix:///system?socket={socket_path(directory)}"


def lab_uri(name: str) -> str:
    """The URI of lab host NAME under the lab root ($VIRTOPS_LAB_ROOT, else /var/lib/virtops/labs)."""
    return uri_at(state_dir(name))
