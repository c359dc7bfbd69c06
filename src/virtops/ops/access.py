"""Can QEMU reach a disk? The rule of the QEMU-access check, for every face.

On a stock host libvirt runs QEMU as an unprivileged user (Debian: `libvirt-qemu`). Its DAC
driver hands the files a guest opens (disk images, kernel, initrd, CD-ROM images) to that user
when the guest starts (`dynamic_ownership`, on by default), but never the directories above
them: each of those must let QEMU's user through (x for its class: owner, group or other). A
pool directory of mode 0700 owned by root (the handbook's pool `test`) therefore makes every
disk in it unreachable, and QEMU fails at start with a raw "Permission denied". This module
finds that out before anything changes.

What QEMU runs as comes from the host: the DAC <secmodel> of libvirt's capabilities, whose
<baselabel> is "+UID:+GID" (root:root when the host has no DAC model). A pool directory's mode,
owner and group come from the pool's XML, as libvirt reports them; the directories above a
pool, and kernel, initrd and CD-ROM files, are looked at only when the daemon runs on this
machine, through /proc/PID/root of the daemon (a lab host's daemon sees its own /var/lib/libvirt).
"""
from __future__ import annotations

import os
import posixpath
import pwd
import stat
from dataclasses import dataclass
from typing import Callable

import libvirt

from virtops.base.errors import InvalidInput, command, term
from virtops.xmlmodels import doc as X

TRAVERSE, READ = 0o1, 0o4  # the permission bits, as they sit in each class's triplet


# -- who QEMU is -------------------------------------------------------------------------------
@dataclass(frozen=True)
class QemuUser:
    uid: int
    gid: int
    groups: frozenset[int]  # the primary group and, on this machine, the supplementary ones
    name: str  # libvirt-qemu, or "uid 64055" when the user is not known here

    def label(self) -> str:
        return f"{self.name} ({self.uid}:{self.gid})"


ROOT = QemuUser(0, 0, frozenset({0}), "root")


def parse_dac_label(caps_xml: str, virt_type: str = "kvm") -> tuple[int, int] | None:
    """(uid, gid) of the DAC base label for the domain type in libvirt's capabilities XML, or
    None when the host has no DAC security model (QEMU then runs as root)."""
    root = X.parse(caps_xml)
    for model in root.iterfind("host/secmodel"):
        if model.findtext("model") != "dac":
            continue
        labels = {node.get("type"): (node.text or "") for node in model.iterfind("baselabel")}
        text = labels.get(virt_type) or labels.get("kvm") or labels.get("qemu")
        if text:
            user, _, group = text.partition(":")
            try:
                return int(user.lstrip("+")), int(group.lstrip("+"))
            except ValueError:
                return None
    return None


def qemu_user(conn: libvirt.virConnect, local: bool, virt_type: str = "kvm") -> QemuUser:
    label = parse_dac_label(conn.getCapabilities(), virt_type)
    if label is None:
        return ROOT
    uid, gid = label
    if not local:
        return QemuUser(uid, gid, frozenset({gid}), f"uid {uid}")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return QemuUser(uid, gid, frozenset({gid}), f"uid {uid}")
    # libvirt starts QEMU with the user's supplementary groups too (Debian: kvm).
    return QemuUser(uid, gid, frozenset(os.getgrouplist(name, gid)), name)


# -- the rule (pure) ---------------------------------------------------------------------------
def permitted(mode: int, owner: int, group: int, who: QemuUser, want: int) -> bool:
    """Whether WHO has the permission bits WANT (TRAVERSE, READ) on a file of MODE, OWNER and
    GROUP. Linux uses exactly one class: the owner's bits for the owner, else the group's bits for
    a member of the group, else the others' bits. No exception for root: libvirt clears QEMU's
    capabilities (clear_emulator_capabilities), so a root QEMU has no CAP_DAC_OVERRIDE."""
    if who.uid == owner:
        bits = (mode >> 6) & 0o7
    elif group in who.groups:
        bits = (mode >> 3) & 0o7
    else:
        bits = mode & 0o7
    return bits & want == want


def fixed_mode(mode: int, owner: int, group: int, who: QemuUser) -> int:
    """MODE with the traverse bit QEMU needs added: the owner's or the group's when QEMU is the
    owner or in the group, otherwise group and others (0700 -> 0711, the usual mode)."""
    if who.uid == owner:
        return mode | 0o100
    if group in who.groups:
        return mode | 0o010
    return mode | 0o011


@dataclass(frozen=True)
class Entry:
    """A directory or file as QEMU meets it."""

    path: str
    mode: int
    owner: int
    group: int

    def describe(self) -> str:
        return f"mode {self.mode & 0o7777:04o}, owner {self.owner}:{self.group}"


# -- reading what libvirt reports, and this machine's directories --------------------------------
def pool_directory(pool: libvirt.virStoragePool) -> Entry | None:
    """The pool's target directory with the mode, owner and group libvirt reports (an active pool
    reports the directory as it is), or None when libvirt reports no permissions."""
    root = X.parse(pool.XMLDesc(0))
    path = root.findtext("target/path")
    mode, owner, group = (root.findtext(f"target/permissions/{tag}") for tag in ("mode", "owner", "group"))
    try:
        return Entry(path, int(mode, 8), int(owner), int(group)) if path and mode and owner and group else None
    except ValueError:
        return None  # libvirt writes -1 for "unset" in some versions


class DaemonFiles:
    """Files as the daemon on this machine sees them: through its mount namespace's root."""

    def __init__(self, root: str):
        self.root = root

    def stat(self, path: str) -> Entry | None:
        try:
            found = os.stat(self.root.rstrip("/") + path)
        except OSError:
            return None
        return Entry(path, stat.S_IMODE(found.st_mode) | stat.S_IFMT(found.st_mode), found.st_uid, found.st_gid)

    def parents(self, path: str) -> list[Entry | None]:
        """Each directory from / down to PATH's parent."""
        parts = posixpath.normpath(path).strip("/").split("/")[:-1]
        return [self.stat("/" + "/".join(parts[:depth])) for depth in range(len(parts) + 1)]


def daemon_files(uri: str, pid: int | None) -> DaemonFiles | None:
    """How to look at the daemon's files from here, or None when they cannot be seen (a remote
    host, the test driver, a daemon whose pid is unknown)."""
    from virtops.daemon.connection import on_this_machine

    if not on_this_machine(uri) or pid is None:
        return None
    root = f"/proc/{pid}/root"
    return DaemonFiles(root) if os.path.isdir(root) else None


# -- the checks, as sentences ------------------------------------------------------------------
def blocked_parent(files: DaemonFiles | None, path: str, who: QemuUser) -> Entry | None:
    """The first directory above PATH that QEMU cannot pass, if any."""
    if files is None:
        return None
    for entry in files.parents(path):
        if entry is not None and not permitted(entry.mode, entry.owner, entry.group, who, TRAVERSE):
            return entry
    return None


def the_pools(mode: object) -> str:
    return f"the pool's {mode}"


def unreachable(subject: str, pool_name: str, directory: Entry | None, files: DaemonFiles | None,
                who: QemuUser) -> str | None:
    """Why QEMU cannot reach SUBJECT (a disk, or "the disks") in a pool, or None when it can."""
    if directory is None:
        return None
    if not permitted(directory.mode, directory.owner, directory.group, who, TRAVERSE):
        mode = term("mode", f"{fixed_mode(directory.mode & 0o7777, directory.owner, directory.group, who):04o}")
        return (f"QEMU runs as {who.label()} and cannot reach {subject}: the directory {directory.path} of pool "
                f"{pool_name} has {directory.describe()}; let QEMU through with "
                f"{command(f'pool set {pool_name}', mode, elsewhere=the_pools(mode))}.")
    above = blocked_parent(files, directory.path, who)
    if above is not None:
        return (f"QEMU runs as {who.label()} and cannot reach {subject}: {above.path}, above the directory of pool "
                f"{pool_name}, has {above.describe()}; let QEMU through with `chmod o+x {above.path}` on the host.")
    return None


def unreadable(what: str, path: str, files: DaemonFiles | None, who: QemuUser) -> str | None:
    """Why QEMU cannot read a kernel, initrd or image file on this machine, or None. The file must
    exist, every directory above it must let QEMU through, and QEMU must be able to read it once
    libvirt has handed it to QEMU's user (so its owner's read bit, or read for QEMU as it is)."""
    if files is None:
        return None
    entry = files.stat(path)
    if entry is None or not stat.S_ISREG(entry.mode):
        return f"{what} {path} is not a file on the host; give the path of an existing file."
    above = blocked_parent(files, path, who)
    if above is not None:
        return (f"QEMU runs as {who.label()} and cannot read {what} {path}: {above.path} has {above.describe()}; "
                f"let QEMU through with `chmod o+x {above.path}` on the host.")
    if not entry.mode & 0o400 and not permitted(entry.mode, entry.owner, entry.group, who, READ):
        return (f"QEMU runs as {who.label()} and cannot read {what} {path}: it has {entry.describe()}; "
                f"make it readable with `chmod a+r {path}` on the host.")
    return None


# -- what faces call, through the operations ----------------------------------------------------
@dataclass(frozen=True)
class HostView:
    """QEMU's user on a host, and the daemon's files when they can be seen from here."""

    who: QemuUser
    files: DaemonFiles | None

    @classmethod
    def of(cls, host) -> "HostView":
        from virtops.daemon.connection import on_this_machine
        from virtops.ops.network import daemon_pid

        local = on_this_machine(host.uri)
        return cls(qemu_user(host.conn, local), daemon_files(host.uri, daemon_pid(host.conn) if local else None))

    def pool_problem(self, conn: libvirt.virConnect, pool_name: str, subject: str) -> str | None:
        try:
            pool = conn.storagePoolLookupByName(pool_name)
            directory = pool_directory(pool)
        except libvirt.libvirtError:
            return None  # a pool that is not there is refused by the operation's own checks
        return unreachable(subject, pool_name, directory, self.files, self.who)


def check_guest_files(host, disks, boot, field: str,
                      new_pool_directory: Callable[[str], Entry | None] = lambda _name: None) -> None:
    """Refuse, before anything changes, a guest whose disks (DiskSpecs), kernel, initrd or CD-ROM
    image QEMU could not open when it starts. `new_pool_directory`: the directory a pool not made
    yet will have (a plan's pools), whose mode is then checked as libvirt will report it."""
    view = HostView.of(host)
    for disk in disks:
        planned = new_pool_directory(disk.pool) if disk.by_volume else None
        problem = (unreachable(f"disk {disk.source_label} ({disk.target})", disk.pool, planned, view.files, view.who)
                   if planned is not None else _disk_problem(host.conn, view, disk))
        if problem:
            raise InvalidInput(field, problem)
    for what, path in (("kernel", boot.kernel if boot else None), ("initrd", boot.initrd if boot else None)):
        problem = unreadable(what, path, view.files, view.who) if path else None
        if problem:
            raise InvalidInput("boot", problem)


def _disk_problem(conn: libvirt.virConnect, view: HostView, disk) -> str | None:
    subject = f"disk {disk.source_label} ({disk.target})"
    if disk.by_volume:
        return view.pool_problem(conn, disk.pool, subject)
    if not disk.path:
        return None  # an empty CD-ROM drive
    try:
        pool_name = conn.storageVolLookupByPath(disk.path).storagePoolLookupByVolume().name()
    except libvirt.libvirtError:
        what = "CD-ROM image" if disk.device == "cdrom" else "disk image"
        return unreadable(what, disk.path, view.files, view.who)
    return view.pool_problem(conn, pool_name, subject)


def pool_warning(host, pool_name: str) -> str | None:
    """For a pool just created or changed: why QEMU could not reach the disks in it, or None."""
    return HostView.of(host).pool_problem(host.conn, pool_name, "the disks in it")
