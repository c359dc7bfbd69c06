"""Storage pools: typed models that become libvirt pool XML, and operations that check the live
host first, act through libvirt, and undo their own partial work when a step fails."""
from __future__ import annotations

import errno
import grp
import posixpath
import pwd
import re
import uuid
from typing import Annotated

import libvirt
from lxml import etree
from pydantic import BeforeValidator, Field
from virtops.daemon import lookups
from virtops.ops import rows
from virtops.xmlmodels.values import ON_A_DEVICE, POOL_TYPES, PoolType
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.pool import PoolSourceXml, PoolSourcesXml, PoolXml
from virtops.base.hostlock import locks_host
from virtops.base import leftovers
from virtops.base.bounded import call_within
from virtops.daemon import owned
from virtops.base.undo import undo_on_failure
from virtops.base.paths import refuse_control_characters
from virtops.base.errors import (InvalidInput, NeedsOption, VirtopsError, WayOut, by_face, from_libvirt, libvirt_errors,
                                 term)
from virtops.base.model import STRICT, Model, changes_model
from virtops.ops.impact import Impact, ways_of

NETFS_FORMATS = ("auto", "nfs", "cifs", "glusterfs")
FS_FORMATS = ("auto", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "ufs", "iso9660", "udf",
              "gfs", "gfs2", "hfs+", "ocfs2", "vmfs")
PARTITION_TABLES = ("dos", "gpt", "mac", "bsd", "pc98", "sun", "lvm2", "dvh", "unknown")  # a disk pool's format
LOGICAL_FORMATS = ("lvm2",)
# Options each pool type needs, and those it accepts besides the common ones.
REQUIRED = {"dir": ("target",), "netfs": ("host", "source_path", "target"), "fs": ("device", "target"),
            "logical": ("source_name",), "disk": ("device",)}
ACCEPTED = {"dir": set(), "netfs": {"host", "source_path", "format"}, "fs": {"device", "format"},
            "logical": {"source_name", "device", "format"}, "disk": {"device", "format"}}

# Directories a pool must never take over: building or deleting the pool would chmod or rmdir them.
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/lib", "/var/lib/libvirt", "/var/log", "/var/run", "/var/cache", "/var/tmp", "/var/spool",
    "/var/mail", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/local", "/usr/share",
    "/usr/include", "/usr/src",
})
# Trees that belong to the system as a whole: nothing under them can be a pool.
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run", "/bin", "/sbin", "/lib", "/usr")

# A reachable NFS server lists its exports in well under a second, a missing address fails in about
# 6 s (ARP); a host that drops RPC packets would hold libvirt's showmount for about two minutes.
SOURCES_TIMEOUT_S = 15
PROBE_PREFIX = "virtops-probe-"  # transient pools that only test whether a directory exists
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$")
MODE_PATTERN = re.compile(r"^0?[0-7]{3}$")
LABEL_PATTERN = re.compile(r"^[^\s:]+:[^\s:]+:[^\s:]+(:\S+)?$")



# -- models -----------------------------------------------------------------------------
def _mode_text(value: object) -> object:
    """An octal mode is text: YAML and JSON read an unquoted 0700 as the number 448 or 700."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"give the mode as a quoted octal string such as '0700' (YAML reads an unquoted 0700 "
                         f"as the number {0o700}, here {value})")
    return value


class PoolSpec(Model):
    """A storage pool as every face asks for it: the CLI's `pool create` and `define-as` options,
    the REST API's body, the spec's pool entries (and its JSON Schema) are this class. Values are
    as typed; `checked()` normalises and refuses, in one sentence per mistake, for every face."""

    model_config = STRICT

    name: str
    type: PoolType = Field("dir", description="dir: a directory; netfs: an NFS/CIFS/GlusterFS export; fs: a block "
                                              "device with a file system; logical: an LVM volume group; disk: a "
                                              "partitioned disk (these two are never built).")
    target: str | None = Field(None, description="Directory of the pool (mount point for netfs and fs).")
    owner: str | int | None = Field(None, description="Owner of the target directory: user name or uid.")
    group: str | int | None = Field(None, description="Group of the target directory: group name or gid.")
    mode: Annotated[str | None, BeforeValidator(_mode_text)] = Field(
        None, description="Mode of the target directory, octal (e.g. 0700; quoted in YAML: '0700').")
    label: str | None = Field(None, description="SELinux context of the target directory.")
    host: str | None = Field(None, description="netfs: the file server.")
    source_path: str | None = Field(None, description="netfs: the exported directory, e.g. /nfs.")
    device: str | None = Field(None, description="fs: the block device, e.g. /dev/sdb1; disk: the disk; "
                                                 "logical: a PV, if any.")
    source_name: str | None = Field(None, description="logical: the volume group, e.g. vg0.")
    format: str | None = Field(None, description="netfs: auto|nfs|cifs|glusterfs; fs: auto|ext4|xfs|...; "
                                                 "disk: dos|gpt|...; logical: lvm2")

    def checked(self, kept: "PoolSpec | None" = None) -> "PoolSpec":
        """A copy with names resolved and paths normalised; InvalidInput for the first bad field.
        `kept`: the pool as the host already has it. The rules that protect new pools (no system
        directory, SELinux label syntax) apply only to values that differ from it: a plan of the
        host as it is never refuses what the host already holds."""
        check_pool_name(self.name)
        _check_options_for_type(self)
        values = self.model_dump(include=set(PoolSpec.model_fields))  # a face's subclass adds its own
        if self.type in ON_A_DEVICE:
            values.update(_checked_on_a_device(self))
        else:
            values["target"] = check_target(self.target, kept=kept.target if kept else None)
        values["mode"] = check_mode(self.mode)
        values["owner"] = resolve_owner(self.owner)
        values["group"] = resolve_group(self.group)
        values["label"] = _check_label(self.label, kept=kept.label if kept else None)
        if self.type == "netfs":
            values.update(_checked_netfs(self))
        if self.type == "fs":
            values.update(_checked_fs(self))
        return PoolSpec(**values)

    def to_element(self) -> etree._Element:
        source = dict(host=self.host if self.type == "netfs" else None,
                      dir=self.source_path if self.type == "netfs" else None,
                      device=self.device if self.type != "netfs" else None,
                      name=self.source_name if self.type == "logical" else None,
                      format=self.format if self.type != "dir" else None)
        perms = {key: value for key, value in dict(mode=self.mode, owner=self.owner, group=self.group,
                                                   label=self.label).items() if value is not None}
        pool = PoolXml().update(type=self.type, name=self.name, source=source, target=self.target,
                                permissions=perms or None)
        X.validate(pool.node, "storagepool")
        return pool.node

    def to_xml(self) -> str:
        return X.to_string(self.to_element())


# A dir pool's permissions, which `pool set` (and its REST body) change in place: PoolSpec's own
# fields, each optional (None: as it is).
POOL_PERMISSION_FIELDS = ("mode", "owner", "group")
PoolPermissions = changes_model(PoolSpec, POOL_PERMISSION_FIELDS, "PoolPermissions",
                                "A dir pool's directory permissions to change (PoolSpec's); absent ones stay.")


class PoolInfo(Model):
    name: str
    type: str
    state: str
    active: bool
    autostart: bool
    persistent: bool
    capacity: int | None
    allocation: int | None
    available: int | None
    target: str | None
    source_host: str | None = None
    source_path: str | None = None
    source_device: str | None = None
    source_format: str | None = None
    source_name: str | None = None
    mode: str | None = None
    owner: int | None = None
    group: int | None = None
    volumes: int | None = None
    uuid: str | None = None
    unreadable: str | None = None  # why the pool's XML could not be read; the other fields are then unknown


class PoolSource(Model):
    """One export found by source discovery (virt-manager's 'Browse')."""

    host: str
    path: str
    format: str | None = None


class CreateResult(Model):
    pool: PoolInfo
    steps: list[str]
    warnings: list[str] = []  # e.g. QEMU could not reach the disks in it (ops.access)


# -- checks on input ----------------------------------------------------------------------
def check_pool_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInput("name", f"{name!r} is not accepted; use up to 100 letters, digits, '_', '.', '+' or '-', "
                                   "starting with a letter, digit or '_'.")


def _check_options_for_type(spec: PoolSpec) -> None:
    for option in REQUIRED[spec.type]:
        if not getattr(spec, option):
            raise InvalidInput(option, f"a {spec.type} pool needs {term(option)}.")
    for option in ("host", "source_path", "device", "format", "source_name"):
        if getattr(spec, option) is not None and option not in ACCEPTED[spec.type]:
            users = ", ".join(t for t in POOL_TYPES if option in ACCEPTED[t])
            raise InvalidInput(option, f"applies only to {users} pools, not to a {spec.type} pool.")


def _normal_path(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")  # normpath keeps a leading '//'


def check_target(path: str | None, kept: str | None = None) -> str:
    """`kept`: the target the pool has on the host; a pool that already sits in a system directory
    is the operator's own doing, refused only for a new pool or a moved one."""
    if not path or not path.startswith("/"):
        raise InvalidInput("target", f"{path!r} is not an absolute path; give one such as /var/lib/libvirt/images/NAME.")
    refuse_control_characters("target", path)
    normal = _normal_path(path)
    if kept is not None and _normal_path(kept) == normal:
        return normal
    if normal in SYSTEM_DIRS or any(normal.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise InvalidInput("target", f"{normal} is a system directory; give a directory of its own "
                                       "such as /var/lib/libvirt/images/NAME.")
    return normal


def check_mode(mode: str | None) -> str | None:
    if mode is None:
        return None
    if not MODE_PATTERN.match(mode):
        raise InvalidInput("mode", f"{mode!r} is not an octal mode; give three or four octal digits such as 0700 or 0755.")
    return mode.rjust(4, "0")


def resolve_owner(owner: str | int | None) -> int | None:
    """A user name or uid; names are looked up on this machine (give a number for a remote host's user)."""
    if owner is None:
        return None
    if str(owner).isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(str(owner)).pw_uid
    except KeyError:
        raise InvalidInput("owner", f"no user named {owner!r}; give an existing user name or a numeric uid.") from None


def resolve_group(group: str | int | None) -> int | None:
    if group is None:
        return None
    if str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise InvalidInput("group", f"no group named {group!r}; give an existing group name or a numeric gid.") from None


def _check_label(label: str | None, kept: str | None = None) -> str | None:
    if label is not None and label != kept and not LABEL_PATTERN.match(label):
        raise InvalidInput("label", f"{label!r} is not an SELinux context; give user:role:type[:level], "
                                      "e.g. system_u:object_r:virt_image_t:s0.")
    return label


def _checked_netfs(spec: PoolSpec) -> dict:
    fmt = spec.format or "auto"
    if fmt not in NETFS_FORMATS:
        raise InvalidInput("format", f"{fmt!r} is not a network file system libvirt mounts; use {', '.join(NETFS_FORMATS)}.")
    if not HOST_PATTERN.match(spec.host or ""):
        raise InvalidInput("host", f"{spec.host!r} is not a host name or address; give one such as 192.168.0.254.")
    path = refuse_control_characters("source_path", spec.source_path or "")
    if fmt in ("auto", "nfs") and not path.startswith("/"):
        raise InvalidInput("source_path", f"{path!r} is not an absolute export path; give one such as /nfs.")
    return {"format": fmt}


def _checked_on_a_device(spec: PoolSpec) -> dict:
    """A logical pool is a volume group (its devices, when given, the PVs); a disk pool is a disk
    with a partition table. Their target is where the device nodes appear, under /dev: no system
    directory rule, since virtops never builds nor deletes these pools (ON_A_DEVICE)."""
    if spec.device is not None:
        if not spec.device.startswith("/dev/"):
            raise InvalidInput("device", f"{spec.device!r} is not a device path; give one such as /dev/sdb.")
        refuse_control_characters("device", spec.device)
    if spec.type == "logical":
        if not NAME_PATTERN.match(spec.source_name or ""):
            raise InvalidInput("source_name", f"{spec.source_name!r} is not a volume group name; give one such as vg0.")
        fmt, formats, target = spec.format or "lvm2", LOGICAL_FORMATS, f"/dev/{spec.source_name}"
    else:
        fmt, formats, target = spec.format or "dos", PARTITION_TABLES, "/dev"
    if fmt not in formats:
        raise InvalidInput("format", f"{fmt!r} is not a format of a {spec.type} pool; use {', '.join(formats)}.")
    given = _normal_path(spec.target) if spec.target else target
    if given != target:
        raise InvalidInput("target", f"a {spec.type} pool's target is {target}, where its device nodes appear; "
                                       f"leave {term('target')} out.")
    return {"format": fmt, "target": target}


def _checked_fs(spec: PoolSpec) -> dict:
    fmt = spec.format or "auto"
    if fmt not in FS_FORMATS:
        raise InvalidInput("format", f"{fmt!r} is not a file system libvirt mounts; use one of {', '.join(FS_FORMATS)}.")
    if not (spec.device or "").startswith("/"):
        raise InvalidInput("device", f"{spec.device!r} is not a device path; give one such as /dev/sdb1.")
    refuse_control_characters("device", spec.device or "")
    return {"format": fmt}


# -- reading pools --------------------------------------------------------------------------
def pool_info(pool: libvirt.virStoragePool, count_volumes: bool = False) -> PoolInfo:
    return PoolInfo(**rows.pool_row(pool, count_volumes))


# -- operations -----------------------------------------------------------------------------
class Pools:
    """The storage pools of one host."""

    def __init__(self, host):
        self.host = host

    @property
    def conn(self) -> libvirt.virConnect:
        return self.host.conn

    def lookup(self, name: str) -> libvirt.virStoragePool:
        return lookups.pool(self.conn, name)

    def exists(self, name: str) -> bool:
        try:
            self.conn.storagePoolLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False

    # -- listing ----------------------------------------------------------------------
    def list(self, include_inactive: bool = True) -> list[PoolInfo]:
        with libvirt_errors("listing storage pools"):
            return [PoolInfo(**row) for row in rows.pool_rows(self.conn, include_inactive)]

    def info(self, name: str) -> PoolInfo:
        pool = self.lookup(name)
        with libvirt_errors(f"reading pool {name}"):
            return pool_info(pool, count_volumes=True)

    def dumpxml(self, name: str, inactive: bool = False) -> str:
        pool = self.lookup(name)
        with libvirt_errors(f"reading pool {name}"):
            return lookups.pool_definition(pool) if inactive else pool.XMLDesc(0)

    # -- checks against the live host -------------------------------------------------
    def check_new(self, spec: PoolSpec) -> PoolSpec:
        """Everything that can be refused before any change: the input, then the host's pools."""
        spec = spec.checked()
        if self.exists(spec.name):
            raise InvalidInput("name", f"a storage pool named {spec.name!r} already exists; choose another name "
                                       "or delete it first.")
        if spec.type not in ON_A_DEVICE:  # disk pools share /dev; a volume group's nodes are its own
            self._check_target_free(spec.target)
        return spec

    def _check_target_free(self, target: str) -> None:
        with libvirt_errors("listing storage pools"):
            pools = self.conn.listAllStoragePools(0)
        for pool in pools:
            try:
                other = PoolXml(X.parse(pool.XMLDesc(0))).target
                other_name = pool.name()
            except libvirt.libvirtError:
                continue
            if not other or PoolXml(X.parse(pool.XMLDesc(0))).type in ON_A_DEVICE:
                continue
            other = posixpath.normpath(other)
            if other == target:
                raise InvalidInput("target", f"{target} is already the target of pool {other_name!r}; give another directory.")
            if target.startswith(other + "/") or other.startswith(target + "/"):
                raise InvalidInput("target", f"{target} overlaps the target {other} of pool {other_name!r}; "
                                               "give a directory outside any other pool's.")

    # -- define, build, start, autostart as one step ------------------------------------
    @locks_host("pool define")
    def define(self, spec: PoolSpec) -> PoolInfo:
        """virsh pool-define-as: define only, after the same checks as create."""
        spec = self.check_new(spec)
        with libvirt_errors(f"defining pool {spec.name}"):
            pool = self.conn.storagePoolDefineXML(spec.to_xml(), 0)
            return pool_info(pool)

    @locks_host("pool define")
    def define_xml(self, xml_text: str, start: bool = False, autostart: bool = False) -> PoolInfo:
        """Define a pool from libvirt's XML as given (a spec's `xml:`, for the pool types virtops
        does not model), or its new definition in place of the pool of that name; then start it
        and mark it autostart when asked. A new pool is undefined again when a later step fails.
        Its storage is never built: a disk, logical or iSCSI pool holds what is already there."""
        node = PoolXml(X.parse_strict(xml_text))
        existed = self.exists(node.name)
        with undo_on_failure() as undo:
            with libvirt_errors(f"defining pool {node.name}"):
                pool = self.conn.storagePoolDefineXML(xml_text, 0)
            if not existed:
                undo.add(pool.undefine, f"defined pool {node.name}")
            if start and not pool.isActive():
                with libvirt_errors(f"starting pool {node.name}"):
                    pool.create(0)
                undo.add(pool.destroy, f"started pool {node.name}")
            if autostart and not pool.autostart():
                with libvirt_errors(f"marking pool {node.name} autostart"):
                    pool.setAutostart(1)
            with libvirt_errors(f"reading pool {node.name}"):
                return pool_info(pool)

    @locks_host("pool create")
    def create(self, spec: PoolSpec, start: bool = True, autostart: bool = True,
               build_device: bool = False) -> CreateResult:
        """Define, build, start and mark autostart; on any failure undo what was done, newest first.
        A logical or disk pool holds what its device holds: it is built (a volume group made on its
        devices, a new partition table on its disk) only with build_device, and libvirt builds only
        on a device that holds no file system, partition table or volume group yet.
        A run killed midway leaves a record (base/leftovers.py): this one removes what that run made
        first, so running the same command again finishes the job."""
        key = f"pool/{spec.name}"
        leftovers.clean_up_after_dead_run(self.host.uri, key, lambda made: self._remove_left_by_dead_run(spec.name, made))
        self._remove_stale_probes()
        spec = self.check_new(spec)
        _check_device_build(spec, build_device)
        on_a_device = spec.type in ON_A_DEVICE  # built only when asked: what the device holds stays
        existed = on_a_device or self._directory_exists(spec.target)
        own = str(uuid.uuid4())
        node = PoolXml(spec.to_element()).update(uuid=own).node
        steps: list[str] = []
        made_record = {"uuid": own, "made_directory": not existed}
        with leftovers.recorded_undo(self.host.uri, key, made_record) as undo:
            # Each inverse is registered before its step and looks the pool up again: a daemon
            # that restarts mid-call may have done the step without answering.
            undo.add(lambda: owned.undefine_own(self.conn, "pool", own), f"defined pool {spec.name}")
            with libvirt_errors(f"defining pool {spec.name}"):
                pool = self.conn.storagePoolDefineXML(X.to_string(node), 0)
            steps.append("defined")
            if not existed:  # only a directory it made itself
                undo.add(lambda: self._delete_own_storage(own), f"made {spec.target}")
            if not on_a_device:
                with libvirt_errors(f"building pool {spec.name} (creating {spec.target})"):
                    pool.build(0)
                steps.append("built" if not existed else "built (directory already existed; permissions applied)")
            elif build_device:
                made = device_storage(spec.type, spec.source_name, spec.device, spec.format)
                with libvirt_errors(f"building pool {spec.name} ({made})"):
                    pool.build(0)
                # Recorded once made, never before: the device may hold what the build refused to overwrite.
                leftovers.note(self.host.uri, key, {**made_record, "built_device": True})
                undo.add(lambda: self._delete_own_storage(own), f"built pool {spec.name} ({made})")
                steps.append(f"built ({made})")
            if start:
                undo.add(lambda: owned.stop_own(self.conn, "pool", own), f"started pool {spec.name}")
                try:
                    pool.create(0)
                except libvirt.libvirtError as err:
                    raise VirtopsError(_start_failure(spec.name, pool, err, undone=True)) from err
                steps.append("started")
            if autostart:
                with libvirt_errors(f"marking pool {spec.name} autostart"):
                    pool.setAutostart(1)
                steps.append("autostart")
            with libvirt_errors(f"reading pool {spec.name}"):
                return CreateResult(pool=pool_info(pool), steps=steps, warnings=self._access_warnings(spec.name))

    def _delete_own_storage(self, own_uuid: str) -> bool:
        """Stop the pool a run made and delete what its build made: the directory, or the volume
        group or partition table it wrote on the device."""
        pool = owned.own(self.conn, "pool", own_uuid)
        if pool is None:
            return False
        owned.stop_own(self.conn, "pool", own_uuid)
        try:
            pool.delete(0)
        except libvirt.libvirtError as err:
            if err.get_int1() != errno.ENOENT:
                raise
            return False  # no directory: the build never ran
        return True

    def _remove_left_by_dead_run(self, name: str, made: dict) -> None:
        """The pool a killed `pool create` made (its recorded UUID), and the directory, volume group
        or partition table it made."""
        own = str(made.get("uuid"))
        pool = owned.own(self.conn, "pool", own)
        if pool is None:
            return
        if pool.isActive() and pool.numOfVolumes() > 0:
            raise VirtopsError(f"pool: {name} was left half-made by a killed `pool create` and holds volumes now; "
                               f"finish it by hand{by_face(' (`virtops pool start`, `virtops pool autostart`)')} "
                               "instead.")
        with libvirt_errors(f"removing pool {name}, left half-made by a killed run"):
            if made.get("made_directory") or made.get("built_device"):
                self._delete_own_storage(own)
            owned.undefine_own(self.conn, "pool", own)

    def _directory_exists(self, path: str) -> bool:
        """Whether PATH is a directory on the libvirt host (which may be remote): start a throwaway
        transient dir pool on it. Lets create() remove on failure only a directory it made itself."""
        probe = PoolXml().update(type="dir", name=f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}", target=path).node
        X.validate(probe, "storagepool")
        try:
            pool = self.conn.storagePoolCreateXML(X.to_string(probe), 0)
        except libvirt.libvirtError:
            return False
        try:
            pool.destroy()
        except libvirt.libvirtError:
            pass
        return True

    def _remove_stale_probes(self) -> None:
        """A create killed between starting its probe and stopping it leaves the transient probe
        running (libvirt has no auto-destroy for pools); it would hold its target. Stop such leftovers."""
        for pool in self.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_TRANSIENT):
            if pool.name().startswith(PROBE_PREFIX):
                try:
                    pool.destroy()
                except libvirt.libvirtError:
                    pass  # another create's probe, stopped by its owner meanwhile

    # -- life cycle ---------------------------------------------------------------------
    def build(self, name: str) -> PoolInfo:
        pool = self.lookup(name)
        with libvirt_errors(f"building pool {name}"):
            pool.build(0)
            return pool_info(pool)

    def start(self, name: str) -> PoolInfo:
        pool = self.lookup(name)
        if pool.isActive():
            raise VirtopsError(f"pool {name} is already running.")
        try:
            pool.create(0)
        except libvirt.libvirtError as err:
            raise VirtopsError(_start_failure(name, pool, err)) from err
        return pool_info(pool)

    def refuse_stopping_under_guests(self, name: str, doing: str, force: bool) -> None:
        """Refuse, unless force, what stops pool NAME while running guests have disks in it (a stop,
        or a replacement from a backup, which stops it and starts the new definition)."""
        pool = self.lookup(name)
        running = self.running_users(name, pool) if pool.isActive() else []
        if running and not force:
            raise NeedsOption(f"pool {name} holds disks of running VM(s) {', '.join(running)}; {doing} leaves "
                              "them on open files libvirt no longer manages (a netfs or fs pool is unmounted under "
                              f"them), and they cannot start again until the pool runs; give {term('force', True)} to go ahead anyway.")

    @locks_host("pool stop")
    def stop(self, name: str, force: bool = False) -> PoolInfo:
        """Stop a pool. Refused while running guests have disks in it, unless force."""
        pool = self.lookup(name)
        if not pool.isActive():
            raise VirtopsError(f"pool {name} is not running.")
        self.refuse_stopping_under_guests(name, "stopping it", force)
        with libvirt_errors(f"stopping pool {name}"):
            pool.destroy()
            return pool_info(pool)

    def refresh(self, name: str) -> PoolInfo:
        pool = self.require_active(name)
        with libvirt_errors(f"refreshing pool {name}"):
            pool.refresh(0)
            return pool_info(pool, count_volumes=True)

    def set_autostart(self, name: str, enabled: bool = True) -> PoolInfo:
        pool = self.lookup(name)
        if not pool.isPersistent():
            raise VirtopsError(f"pool {name} is transient; only a defined pool can start with the host.")
        with libvirt_errors(f"setting autostart of pool {name}"):
            pool.setAutostart(1 if enabled else 0)
            return pool_info(pool)

    def set_permissions(self, name: str, mode: str | None = None, owner: str | int | None = None,
                        group: str | int | None = None) -> CreateResult:
        """Change a dir pool's <permissions> (those left None stay) and apply them to its directory:
        redefine the pool, then build it again, which sets mode, owner and group on the existing
        directory. libvirt builds only a stopped pool, so a running one stops for that moment and
        starts again (its volumes stay where they are; running VMs keep their open disks). On
        failure the old definition, directory permissions and state come back."""
        pool = self.lookup(name)
        if mode is None and owner is None and group is None:
            raise InvalidInput("mode", "nothing to change; give the mode, owner or group to set.")
        values = {"mode": check_mode(mode), "owner": resolve_owner(owner), "group": resolve_group(group)}
        with libvirt_errors(f"reading pool {name}"):
            if not pool.isPersistent():
                raise VirtopsError(f"pool {name} is transient; only a defined pool has permissions to change.")
            old_xml = pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE)
            active = bool(pool.isActive())
        xml = PoolXml(X.parse(old_xml))
        root = xml.node
        if xml.type != "dir":
            raise InvalidInput("mode", f"pool {name} is a {xml.type} pool; the permissions of a mounted "
                                         "file system are the file system's own, so only dir pools are changed.")
        xml.permissions = {key: value for key, value in values.items() if value is not None}  # the rest stays
        X.validate(root, "storagepool")
        steps: list[str] = []
        state = {"built": False}

        def restore() -> None:
            self.conn.storagePoolDefineXML(old_xml, 0)
            if pool.isActive():
                return
            if state["built"]:
                pool.build(0)  # the old permissions back on the directory
            if active:
                pool.create(0)

        with undo_on_failure() as undo:
            with libvirt_errors(f"redefining pool {name} with its new permissions"):
                self.conn.storagePoolDefineXML(X.to_string(root), 0)
            undo.add(restore, f"redefined pool {name} with the new permissions")
            steps.append("redefined")
            if active:
                with libvirt_errors(f"stopping pool {name} to apply its permissions"):
                    pool.destroy()
                steps.append("stopped")
            with libvirt_errors(f"building pool {name} (applying the permissions to {xml.target})"):
                state["built"] = True
                pool.build(0)
            steps.append("built (permissions applied to the directory)")
            if active:
                try:
                    pool.create(0)
                except libvirt.libvirtError as err:
                    raise VirtopsError(_start_failure(name, pool, err).replace(
                        "the pool stays defined and inactive", "its old permissions were restored")) from err
                steps.append("started")
            with libvirt_errors(f"reading pool {name}"):
                return CreateResult(pool=pool_info(pool), steps=steps, warnings=self._access_warnings(name))

    def _access_warnings(self, name: str) -> list[str]:
        """A pool QEMU cannot pass is made all the same (the operator may want it so), but said."""
        from virtops.ops.access import pool_warning

        warning = pool_warning(self.host, name)
        return [warning] if warning else []

    @locks_host("pool undefine")
    def undefine(self, name: str) -> None:
        pool = self.lookup(name)
        with libvirt_errors(f"undefining pool {name}"):
            pool.undefine()

    def require_active(self, name: str) -> libvirt.virStoragePool:
        return lookups.active_pool(self.conn, name)

    # -- delete ---------------------------------------------------------------------------
    @locks_host("pool delete")
    def delete(self, name: str, with_volumes: bool = False, keep_data: bool = False, force: bool = False) -> list[str]:
        """Stop and undefine a pool; also remove its directory (and with_volumes its volumes). A
        logical or disk pool's storage is its device's content: its volume group (vgremove, then
        pvremove of its devices) or its partition table goes only with with_volumes.
        Refused while any VM references a volume in it, unless force. Returns what was done."""
        if with_volumes and keep_data:
            raise InvalidInput("with_volumes", f"cannot be combined with {term('keep_data', True)}; choose one.")
        pool = self.lookup(name)
        if not force:
            self._refuse_if_in_use(name, pool)
        volumes = pool.listAllVolumes(0) if pool.isActive() else []
        if volumes and not (with_volumes or keep_data):
            raise _choose_for_volumes(name, len(volumes))
        done: list[str] = []
        with libvirt_errors(f"deleting pool {name}"):
            if with_volumes:
                left = self._delete_volumes(pool, volumes)
                done.append(f"deleted {len(volumes) - len(left)} volume(s)")
            if pool.isActive():
                pool.destroy()
                done.append("stopped")
            if not keep_data:
                self._remove_storage(pool, with_volumes, done)
                if with_volumes and left:
                    done[-1] += (f" and with it partition(s) {', '.join(left)} (the kernel lists them until the "
                                 "disk is read again)")
            if pool.isPersistent():
                pool.undefine()
            done.append("undefined")
        return done

    @staticmethod
    def _delete_volumes(pool: libvirt.virStoragePool, volumes: list) -> list[str]:
        """Delete the volumes one by one (parted tells the kernel of each partition removed), but
        for the partitions libvirt cannot remove: those go with the partition table; their names."""
        xml = PoolXml(X.parse(pool.XMLDesc(0)))
        left = [vol.name() for vol in volumes if xml.type == "disk" and not _removable_partition(xml, vol.name())]
        for vol in volumes:
            if vol.name() not in left:
                vol.delete(0)
        return left

    @staticmethod
    def _remove_storage(pool: libvirt.virStoragePool, with_volumes: bool, done: list[str]) -> None:
        xml = PoolXml(X.parse(pool.XMLDesc(0)))
        if xml.type in ON_A_DEVICE:
            storage = device_storage(xml.type, xml.source.name, xml.source.device, xml.source.format)
            if with_volumes:  # libvirt's delete: vgremove and pvremove, or the partition table wiped
                pool.delete(0)
                done.append(f"removed the {storage}")
            else:
                done.append(f"kept the {storage} (deleting the pool with its volumes removes it)")
            return
        try:
            pool.delete(0)
            done.append("removed its directory")
        except libvirt.libvirtError as err:
            # A directory that is already gone is fine; anything else is worth stopping for.
            if "No such file" not in (err.get_error_message() or ""):
                raise

    def impact(self, name: str, action: str) -> Impact:
        """What stopping or deleting pool NAME costs, before it is done: the running VMs with disks
        in it, on the facts `stop` and `delete` refuse on, and the option they would then need."""
        pool = self.lookup(name)
        if action == "stop":
            running = self.running_users(name, pool) if pool.isActive() else []
            cost = (f"running VM(s) {', '.join(running)} keep disks in {name} on open files libvirt no longer manages, "
                    "and cannot start again until the pool runs." if running else
                    f"no running VM has a disk in {name}; its volumes cannot be used until it starts again.")
            return Impact(action=action, subject=f"pool {name}", guests=running, cost=cost,
                          option="force" if running else None)
        if action == "delete":
            vms, running = self._users(name, pool)
            lost = f"; the running ones ({', '.join(running)}) go on with disks libvirt no longer knows" if running else ""
            cost = (f"VM(s) {', '.join(sorted(vms))} use volumes in {name}{lost}; none of them can start again."
                    if vms else f"no VM uses a volume in {name}.")
            count = pool.numOfVolumes() if pool.isActive() else 0
            choice = _choose_for_volumes(name, count) if count else None
            return Impact(action=action, subject=f"pool {name}", guests=running,
                          cost=cost + (f" It holds {count} volume(s): delete them too, or keep the data." if count else ""),
                          option="force" if vms else None, ways=ways_of(choice) if choice else [])
        raise InvalidInput("action", f"{action!r} is no action on a pool with a cost; give stop or delete.")

    def _users(self, name: str, pool: libvirt.virStoragePool) -> tuple[set[str], list[str]]:
        """The VMs with a volume of the pool as a disk, and the running ones among them."""
        from virtops.ops.volume import volume_users

        users = volume_users(self.conn)
        vms = users.of_pool(name, pool_info(pool).target)
        return vms, sorted(vms & users.running)

    def _refuse_if_in_use(self, name: str, pool: libvirt.virStoragePool) -> None:
        vms, running = self._users(name, pool)
        if vms:
            loss = (f"; the running ones ({', '.join(running)}) would go on with disks libvirt no longer knows, "
                    "and none of them could start again" if running else "; none of them could start again")
            raise NeedsOption(f"pool {name} is in use: VM(s) {', '.join(sorted(vms))} use volumes in it{loss}; "
                              f"detach those disks first, or give {term('force', True)} to delete it anyway.")

    def running_users(self, name: str, pool: libvirt.virStoragePool) -> list[str]:
        """Running VMs with a disk in the pool."""
        return self._users(name, pool)[1]

    # -- discovery ------------------------------------------------------------------------
    def sources(self, pool_type: str, host: str) -> list[PoolSource]:
        """The exports of a file server, through libvirt's find-storage-pool-sources."""
        if pool_type != "netfs":
            raise InvalidInput("type", f"{pool_type!r} is not supported for discovery; use netfs.")
        if not HOST_PATTERN.match(host or ""):
            raise InvalidInput("host", f"{host!r} is not a host name or address; give one such as 192.168.0.254.")
        query = PoolSourceXml().update(host=host).node
        try:
            text = call_within(SOURCES_TIMEOUT_S, self.conn.findStoragePoolSources, pool_type, X.to_string(query), 0)
        except TimeoutError as err:
            raise VirtopsError(f"host {host} did not answer within {SOURCES_TIMEOUT_S} s: no NFS server answers "
                               "there, or a firewall drops its RPC packets; check the address.") from err
        except libvirt.libvirtError as err:
            if "no storage pools were found" in (err.get_error_message() or ""):
                raise VirtopsError(f"host {host} answered with no NFS exports, or no NFS server answers there.") from err
            raise from_libvirt(err, f"asking {host} for its exports") from err
        return parse_sources(text, host)


def _choose_for_volumes(name: str, count: int) -> NeedsOption:
    """A pool with volumes is deleted only as its caller chooses: with them, or keeping its data."""
    return NeedsOption(f"pool: pool {name} holds {count} volume(s); give {term('with_volumes', True)} to delete them with "
                       f"the pool, or {term('keep_data', True)} to only undefine it.", field="pool",
                       ways=[WayOut("with_volumes", True, "delete the volumes too"),
                             WayOut("keep_data", True, "keep the data, remove only the pool definition")])


def _check_device_build(spec: PoolSpec, build_device: bool) -> None:
    if not build_device:
        return
    if spec.type not in ON_A_DEVICE:
        raise InvalidInput("build", f"applies only to logical and disk pools; a {spec.type} pool is always built.")
    if not spec.device:
        raise InvalidInput("build", f"a logical pool is built on its physical volumes; give {term('device')}.")


def _removable_partition(pool: PoolXml, partition: str) -> bool:
    """libvirt 9.0 removes a partition by the number after its disk's name in the partition's name;
    on a disk whose name ends in a digit (loop0, nvme0n1) that is "p1" of loop0p1, which parted refuses."""
    disk = posixpath.basename(pool.source.device or "")
    return not (disk[-1:].isdigit() and partition.startswith(disk + "p"))


def device_storage(pool_type: str, source_name: str | None, device: str | None, fmt: str | None) -> str:
    """What building a logical or disk pool writes on its device, in words."""
    if pool_type == "logical":
        return f"volume group {source_name} on {device or 'its devices'}"
    return f"{fmt or 'dos'} partition table on {device}"


def parse_sources(text: str, host: str) -> list[PoolSource]:
    found = []
    for source in PoolSourcesXml(X.parse(text)).sources:
        found.append(PoolSource(host=source.host or host, path=source.dir or "", format=source.format))
    return found


def _start_failure(name: str, pool: libvirt.virStoragePool, err: libvirt.libvirtError, undone: bool = False) -> str:
    """One sentence; for a mount that failed, the mount's own complaint rather than libvirt's wrapper.
    `undone`: the failed start was part of `create`, whose undo says what it removed again."""
    outcome = (f"use {term('start', False)} to define it anyway" if undone
               else "the pool stays defined and inactive")
    message = err.get_error_message() or str(err)
    match = re.search(r"\(/(?:usr/)?bin/mount [^)]*\) unexpected exit status \d+: (.*)", message.replace("\n", " "))
    if match:
        detail = " ".join(match.group(1).split()).split(" dmesg(1)")[0].rstrip(". ")
        if detail.endswith("No such device"):
            detail += ": this kernel cannot mount that file system type"
        try:
            info = pool_info(pool)
            where = f"{info.source_host}:{info.source_path}" if info.source_host else info.source_device
            where = f"{where} on {info.target}"
        except libvirt.libvirtError:
            where = "its source"
        return f"starting pool {name} failed: mounting {where} failed ({detail}); {outcome}."
    from virtops.base.errors import one_sentence

    return f"starting pool {name} failed: {one_sentence(message).rstrip('.')}; {outcome}."


