"""A host: one libvirt daemon, and the objects on it (pools, volumes, networks, VMs), one module each.

This module stays light (no pydantic): every command imports it, `vm list` among them. The facts
of a host, and whether it runs guests with KVM or only TCG, are in daemon/facts.py and ops/hostcheck.py.
"""
from __future__ import annotations

from virtops.base.binding import libvirt
from virtops.daemon.connection import Connection

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from virtops.daemon.facts_models import HostCheck, HostInfo


class Host:
    def __init__(self, uri: str | None = None):
        self.connection = Connection(uri)

    @property
    def uri(self) -> str:
        return self.connection.uri

    @property
    def conn(self) -> libvirt.virConnect:
        return self.connection.conn

    def close(self) -> None:
        self.connection.close()

    # -- the objects of the host, one module each (imported when first used) ---------
    @property
    def pools(self):
        from virtops.ops.pool import Pools

        return Pools(self)

    @property
    def volumes(self):
        from virtops.ops.volume import Volumes

        return Volumes(self)

    @property
    def networks(self):
        from virtops.ops.network import Networks

        return Networks(self)

    @property
    def vms(self):
        from virtops.ops.vm import Vms

        return Vms(self)

    def names(self, kind: str) -> list[str]:
        """The names of the host's VMs, networks or pools, or its volumes as POOL/VOLUME (of
        running pools): what shell completion offers. One listing call per kind (per pool)."""
        conn = self.conn
        if kind == "vm":
            return sorted(dom.name() for dom in conn.listAllDomains())
        if kind == "network":
            return sorted(net.name() for net in conn.listAllNetworks())
        if kind == "pool":
            return sorted(pool.name() for pool in conn.listAllStoragePools())
        if kind == "volume":
            return sorted(f"{pool.name()}/{vol.name()}"
                          for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
                          for vol in pool.listAllVolumes())
        raise ValueError(f"no names of kind {kind!r}")

    # -- facts (facts.py) --------------------------------------------------------------
    def info(self) -> HostInfo:
        from virtops.daemon.facts_models import read_info

        return read_info(self.connection)

    def check(self, **timeouts: float) -> HostCheck:
        """Boot the test guest with KVM, then with TCG, and remember which works."""
        from virtops.ops.hostcheck import check

        return check(self, **timeouts)

    def cached_check(self) -> HostCheck | None:
        from virtops.daemon.facts_models import cached_check

        return cached_check(self.connection)

    def virt_type(self) -> str:
        """The domain type to use for new guests: 'kvm' when KVM really boots a guest here, else 'qemu' (TCG)."""
        from virtops.ops.hostcheck import virt_type

        return virt_type(self)
