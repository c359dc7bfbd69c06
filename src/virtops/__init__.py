"""virtops: manage KVM hosts through libvirt."""
from __future__ import annotations

__version__ = "0.1.0"


def connect(uri: str | None = None):
    """Open a host: `uri`, else $LIBVIRT_DEFAULT_URI, else qemu:///system; 'lab:NAME' for a lab host."""
    from virtops.host import Host

    return Host(uri)
