"""A VM's devices as every face asks for them: one DiskRequest and one NicRequest. The CLI (its
options and its compact POOL/VOL,bus=... syntax), the REST API (its bodies), the spec (its
entries, so its JSON Schema) and the Python API all take these classes; a face declares no field
of its own. What each value may be is checked in the core (ops/vm.py), in one sentence per
mistake, for every face alike."""
from __future__ import annotations

from pydantic import Field

from virtops.base.errors import InvalidInput
from virtops.daemon.lookups import split_volume_ref
from virtops.base.model import STRICT, Model, one_of
from virtops.xmlmodels.values import (CACHE_MODES, DIRECT_MODES, DISK_BUSES, DISK_FORMATS, DISK_PROTOCOLS,
                                      NIC_MODELS, NIC_TYPES)


def path_disk_type(path: str) -> str | None:
    """What a disk by path is written as: a block device under /dev/ (libvirt opens it as one),
    else a file (None, libvirt's default)."""
    return "block" if path.startswith("/dev/") else None


class DiskRequest(Model):
    """A disk: a pool's volume (the disk follows the pool), a path on the host, or an image on a
    server (a network disk). Exactly one of volume, path and protocol says which."""

    model_config = STRICT

    volume: str | None = Field(None, description="POOL/VOLUME: a volume of a pool on the host (or its path, "
                                                 "as virsh takes it: the disk still follows the pool).")
    path: str | None = Field(None, description="A disk by path: a file on the host, or a block device "
                                               "(a path under /dev/).")
    protocol: one_of(DISK_PROTOCOLS) | None = Field(None, description="A network disk's protocol.")
    name: str | None = Field(None, description="A network disk's image on its servers (rbd: POOL/IMAGE; an nbd "
                                               "server's only export needs none).")
    hosts: list[str] = Field([], description="A network disk's servers: HOST, HOST:PORT or unix:SOCKET.")
    format: one_of(DISK_FORMATS) | None = Field(None, description="The image format of a disk by path or on "
                                                                  "the network (default raw); a volume's is its own.")
    target: str | None = Field(None, description="vda, vdb, sda...; default: the next free name on the bus.")
    bus: one_of(DISK_BUSES) = Field("virtio", description="The bus the guest sees the disk on.")
    cache: one_of(CACHE_MODES) | None = Field(None, description="The host's cache mode for the disk.")
    readonly: bool = Field(False, description="The guest only reads it.")
    shareable: bool = Field(False, description="Other VMs may attach it shareable too.")
    serial: str | None = Field(None, description="The serial number the guest sees.")

    @property
    def kind(self) -> str | None:
        """volume, path or network: what the disk opens; None when the request names nothing."""
        given = [kind for kind, value in (("volume", self.volume), ("path", self.path),
                                          ("network", self.protocol)) if value]
        return given[0] if len(given) == 1 else None

    @property
    def source_text(self) -> str:
        """POOL/VOLUME, the path, or PROTOCOL://HOST:PORT/NAME, as listings show a disk's source."""
        from virtops.ops.vmrows import disk_source_label

        return disk_source_label({"pool": None, "volume": None, **self.model_dump(
            include={"path", "protocol", "name", "hosts"})}) if not self.volume else self.volume

    def pool_and_volume(self) -> tuple[str, str]:  # a volume given by its path: see ops/vm.py disk_source
        """(POOL, VOLUME) of a volume disk; InvalidInput when volume is not POOL/VOLUME."""
        return split_volume_ref(self.volume, "volume")

    def check_source(self) -> None:
        """Exactly one source, and a network disk's fields only on a network disk."""
        given = [key for key in ("volume", "path", "protocol") if getattr(self, key)]
        if len(given) != 1:
            raise InvalidInput("volume", "give exactly one of volume (POOL/VOLUME), path (a file or block device) "
                                         f"and protocol (a network disk){'; this gives ' + ', '.join(given) if given else ''}.")
        if not self.protocol and (self.name or self.hosts):
            field = "name" if self.name else "hosts"
            raise InvalidInput(field, "belongs to a network disk; give protocol too, or leave it out.")
        if self.volume and self.format:
            raise InvalidInput("format", "is the volume's own for a volume disk; leave it out.")

    def normalized(self) -> "DiskRequest":
        """libvirt's default filled in (a disk by path or on the network is raw unless it says), so
        that a default set by hand is no change."""
        if self.volume or self.format:
            return self
        return self.model_copy(update={"format": "raw"})


class NicRequest(Model):
    """A NIC, plugged into exactly one of: a virtual network, a bridge on the host, a host device
    (macvtap, type direct)."""

    model_config = STRICT

    network: str | None = Field(None, description="A virtual network of the host (type network).")
    bridge: str | None = Field(None, description="A bridge on the host, such as br0 (type bridge).")
    direct: str | None = Field(None, description="A host device the NIC joins through macvtap, such as eth0 "
                                                 "(type direct).")
    mode: one_of(DIRECT_MODES) | None = Field(None, description="direct: how it joins the device; libvirt's "
                                                                "default is vepa.")
    mac: str | None = Field(None, description="Default: a free 52:54:00:xx:xx:xx (any MAC matches).")
    model: one_of(NIC_MODELS) = "virtio"

    @property
    def type(self) -> str | None:
        """network, bridge or direct: the field that names the source; None unless exactly one does."""
        given = [kind for kind in NIC_TYPES if getattr(self, kind)]
        return given[0] if len(given) == 1 else None

    @property
    def source(self) -> str | None:
        return getattr(self, self.type) if self.type else None

    def check_source(self) -> None:
        given = [kind for kind in NIC_TYPES if getattr(self, kind)]
        if len(given) != 1:
            raise InvalidInput("network", "give exactly one of network, bridge and direct"
                                          f"{'; this gives ' + ', '.join(given) if given else ''}.")
        if self.mode is not None and self.type != "direct":
            raise InvalidInput("mode", "belongs to a direct NIC; leave it out for a NIC on a network or bridge.")
        if self.mode is not None and self.mode not in DIRECT_MODES:
            raise InvalidInput("mode", f"{self.mode!r} is not a direct mode; use one of {', '.join(DIRECT_MODES)}.")

    def normalized(self) -> "NicRequest":
        """libvirt's default filled in, so that a default set by hand is no change."""
        return self.model_copy(update={"mode": "vepa"}) if self.type == "direct" and self.mode is None else self
