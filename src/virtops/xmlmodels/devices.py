"""Device XML of a domain: <disk>, <interface>, and the screen: <graphics> and <video>."""
from __future__ import annotations

from .fields import FLAG, INT, MAC, YESNO, Children, Field, XmlModel
from .values import NIC_TYPES

# Which attribute of <source> names the path a disk opens, by the disk's type (a network disk
# names an image on a server instead: its protocol, source name and hosts).
DISK_SOURCE_ATTR = {"file": "file", "block": "dev", "dir": "dir"}
# Which attribute of <source> names what a NIC is plugged into, by the NIC's type: the type's own
# name, but a direct NIC's device is dev.
NIC_SOURCE_ATTR = {**{kind: kind for kind in NIC_TYPES}, "direct": "dev"}


class DiskHostXml(XmlModel):
    """<host name='mon1' port='6789'/> in a network disk's <source>: a server of the image, or
    <host transport='unix' socket='/run/nbd.sock'/> for a local socket."""

    TAG = "host"
    name = Field("@name")
    port = Field("@port", INT)
    transport = Field("@transport")  # tcp (the default), unix, rdma
    socket = Field("@socket")


class DiskXml(XmlModel):
    TAG = "disk"
    ORDER = {"": ("driver", "auth", "source", "backingStore", "target", "iotune", "boot", "readonly", "shareable",
                  "transient", "serial", "wwn", "vendor", "product", "encryption", "alias", "address")}

    def _path(self) -> str | None:
        """The file, block device or directory a disk that is neither a pool volume nor on the
        network opens."""
        source = self.first("source")
        if source is None:
            return None
        return source.get("file") or source.get("dev") or source.get("dir")

    def _set_path(self, path: str | None) -> None:
        source = self.node.find("source")
        if source is not None:
            for attr in DISK_SOURCE_ATTR.values():
                source.attrib.pop(attr, None)
        if path is None:
            self.prune(source)
            return
        attr = DISK_SOURCE_ATTR.get(self.node.get("type") or "file", "file")
        self.ensure(("source",)).set(attr, path)

    type = Field("@type")                      # file, block, volume, network...
    device = Field("@device")                  # disk, cdrom, floppy, lun
    driver_name = Field("driver/@name")
    format = Field("driver/@type")
    cache = Field("driver/@cache", carry="DiskRequest.cache")
    pool = Field("source/@pool", carry="DiskRequest.volume")
    volume = Field("source/@volume", carry="DiskRequest.volume")
    path = Field("source/@file", get=_path, set=_set_path, carry="DiskRequest.path")
    protocol = Field("source/@protocol", carry="DiskRequest.protocol")  # network disks: rbd, nbd, iscsi, http...
    source_name = Field("source/@name", carry="DiskRequest.name")  # the image on the server (rbd: pool/image)
    hosts = Children(DiskHostXml, "source/host")
    target = Field("target/@dev", carry="DiskRequest.target")
    bus = Field("target/@bus", carry="DiskRequest.bus")
    readonly = Field("readonly", FLAG, carry="DiskRequest.readonly")
    shareable = Field("shareable", FLAG, carry="DiskRequest.shareable")
    serial = Field("serial", carry="DiskRequest.serial")


class NicXml(XmlModel):
    TAG = "interface"
    ORDER = {"": ("mac", "source", "virtualport", "ip", "route", "script", "backend", "target", "guest", "model",
                  "driver", "alias", "address")}

    def _source(self) -> str | None:
        """What the NIC is plugged into: a virtual network, a host bridge or device, a vhost-user
        socket, or the address of a socket NIC (udp, mcast, server, client)."""
        source = self.first("source")
        if source is None:
            return None
        named = source.get("network") or source.get("bridge") or source.get("dev") or source.get("path")
        if named:
            return named
        address, port = source.get("address"), source.get("port")
        return f"{address or ''}:{port}" if port else address

    def _set_source(self, name: str | None) -> None:
        source = self.node.find("source")
        if source is not None:
            for attr in NIC_SOURCE_ATTR.values():
                source.attrib.pop(attr, None)
        if name is None:
            self.prune(source)
            return
        self.ensure(("source",)).set(NIC_SOURCE_ATTR.get(self.node.get("type") or "network", "network"), name)

    type = Field("@type")                          # network, bridge, direct, user...
    mac = Field("mac/@address", MAC, carry="NicRequest.mac")
    source = Field("source/@network", get=_source, set=_set_source, carry="NicRequest.network")
    source_mode = Field("source/@mode", carry="NicRequest.mode")            # direct: vepa, bridge, private, passthrough; vhostuser: client, server
    target_dev = Field("target/@dev")              # the host-side device of a running guest's NIC
    model = Field("model/@type", carry="NicRequest.model")


class GraphicsXml(XmlModel):
    """A display QEMU serves (VNC, SPICE). virtops' own listen only on the host's loopback."""
    TAG = "graphics"
    ORDER = {"": ("listen", "channel", "image", "streaming", "clipboard", "mouse", "filetransfer", "gl", "audio")}

    type = Field("@type")                        # vnc, spice, ...
    port = Field("@port", INT)                   # -1 before start with autoport; the real one while running
    autoport = Field("@autoport", YESNO)
    listen_type = Field("listen/@type")          # address, network, socket, none
    listen_address = Field("listen/@address")


class VideoXml(XmlModel):
    """The guest's video card; model vga shows its text console (the test guest's kernel prints there)."""
    TAG = "video"
    ORDER = {"": ("driver", "model", "alias", "address")}

    model = Field("model/@type")                 # vga, cirrus, virtio, qxl, none
