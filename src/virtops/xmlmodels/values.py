"""The values of libvirt's XML that virtops offers, each enumeration declared once. Every face
takes them from here: the core's checks, the spec's and the REST API's schemas, the CLI's choices.
Plain tuples and Literals (no pydantic), so the CLI can build its options without importing it."""
from __future__ import annotations

NETWORK_MODES = ("nat", "route", "open", "isolated", "bridge")
# A network becomes or stops being a bridge to a host bridge only by being made again, not by an edit.
EDITABLE_MODES = tuple(mode for mode in NETWORK_MODES if mode != "bridge")
MODES_WITH_DEV = ("nat", "route")  # libvirt forwards through a named device only in these modes
POOL_TYPES = ("dir", "netfs", "fs", "logical", "disk")
BUILT_AS_DIRECTORY = POOL_TYPES[:2]  # building these only makes the target directory; an fs build formats
# Pools on a device: building one writes the device (vgcreate, a new partition table) and deleting
# one wipes it, so virtops defines and starts them on what is there and never builds or deletes it.
ON_A_DEVICE = ("logical", "disk")
VOLUME_FORMATS = ("raw", "qcow2")  # what virtops creates; a pool may hold others
# Image formats QEMU's block layer reads (the driver type of a disk).
DISK_FORMATS = ("raw", "qcow2", "qed", "vmdk", "vdi", "vpc", "vhdx", "qcow", "cloop", "dmg", "bochs", "parallels")
DISK_BUSES = ("virtio", "scsi", "sata", "ide", "usb")
TARGET_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}  # a bus's disk names
CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
# NIC models QEMU's x86 machines emulate; libvirt's domain capabilities do not list them.
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3")
# The NIC types virtops makes, each named by the field of NicRequest that says what it is plugged
# into: a virtual network, a bridge on the host, a host device (macvtap). Others (user, ethernet,
# vhostuser, hostdev, sockets) are read and shown, not made.
NIC_TYPES = ("network", "bridge", "direct")
DIRECT_MODES = ("vepa", "bridge", "private", "passthrough")  # libvirt's default: vepa
# The protocols of network disks (<source protocol=...>) libvirt's QEMU driver takes.
DISK_PROTOCOLS = ("nbd", "rbd", "iscsi", "gluster", "http", "https", "ftp", "ftps", "tftp", "ssh", "nfs")
NAMELESS_PROTOCOLS = ("nbd",)  # an nbd server may serve its one export without a name

# The same as types, for pydantic models (a Literal of a tuple is a Literal of its items). Made
# when a model first asks: the listings read the tuples, and importing typing would cost them.
LITERALS = {"NetworkMode": NETWORK_MODES, "EditableMode": EDITABLE_MODES, "PoolType": POOL_TYPES,
            "VolumeFormat": VOLUME_FORMATS, "DiskFormat": DISK_FORMATS, "DiskBus": DISK_BUSES,
            "CacheMode": CACHE_MODES}


def __getattr__(name: str):
    if name not in LITERALS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Literal

    made = globals()[name] = Literal[LITERALS[name]]  # type: ignore[valid-type]
    return made
