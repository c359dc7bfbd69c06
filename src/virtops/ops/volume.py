"""Storage volumes: typed models that become libvirt volume XML, listing that stays fast on pools
with thousands of volumes, in-use protection, and sparse upload/download through libvirt streams."""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Literal, TypeVar

import libvirt
from lxml import etree
from pydantic import Field
from virtops.daemon import lookups
from virtops.daemon.lookups import split_volume_ref  # noqa: F401 (the spec and the CLI import it from here)
from virtops.ops.rows import VolumeUsers, volume_row, volume_rows, volume_users, volume_xml_or_none
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.values import ON_A_DEVICE, VOLUME_FORMATS, VolumeFormat
from virtops.xmlmodels.pool import PoolXml
from virtops.xmlmodels.volume import VolumeXml
from virtops.base.hostlock import host_lock, locks_host, refuse_if_written, writing_volume
from virtops.base.errors import InvalidInput, NeedsOption, NotFound, VirtopsError, WayOut, libvirt_errors, term
from virtops.base.units import format_size, parse_size
from virtops.base.model import STRICT, Model, Size
from virtops.ops.impact import Impact

T = TypeVar("T")

Progress = Callable[[int, int], None]  # (done, total) in bytes
WIPE_ALGORITHMS = {
    "zero": libvirt.VIR_STORAGE_VOL_WIPE_ALG_ZERO, "nnsa": libvirt.VIR_STORAGE_VOL_WIPE_ALG_NNSA,
    "dod": libvirt.VIR_STORAGE_VOL_WIPE_ALG_DOD, "bsi": libvirt.VIR_STORAGE_VOL_WIPE_ALG_BSI,
    "gutmann": libvirt.VIR_STORAGE_VOL_WIPE_ALG_GUTMANN, "schneier": libvirt.VIR_STORAGE_VOL_WIPE_ALG_SCHNEIER,
    "pfitzner7": libvirt.VIR_STORAGE_VOL_WIPE_ALG_PFITZNER7, "pfitzner33": libvirt.VIR_STORAGE_VOL_WIPE_ALG_PFITZNER33,
    "random": libvirt.VIR_STORAGE_VOL_WIPE_ALG_RANDOM, "trim": libvirt.VIR_STORAGE_VOL_WIPE_ALG_TRIM,
}
# libvirtd serves at most 5 calls of one client at a time by default (max_client_requests);
# more threads than that keep requests queued on the wire, so the daemon never waits for us.
LIST_WORKERS = 16
STREAM_CHUNK = 1024 * 1024
UPLOAD_BLOCK = 1024 * 1024  # a streamed upload's blocks of zeros this big stay holes
ZERO_BLOCK = bytes(UPLOAD_BLOCK)
UPLOAD_RUN = 16 * 1024 * 1024  # at most this much data of a streamed upload is held before it is sent
POLL_S = 0.2


# -- models -------------------------------------------------------------------------------
class VolumeRequest(Model):
    """A new volume in a pool, as every face asks for it: the CLI's `vol create` options, the REST
    API's body, the spec's volume entries (and its JSON Schema) are this class. What each value
    may be is checked in `Volumes.check_new`, in one sentence per mistake, for every face alike."""

    model_config = STRICT

    name: str
    capacity: Size | None = Field(None, description="The size the guest sees: bytes, or virsh units such as 1000M, "
                                                    "5G, 512MiB. Required (a spec's volume given as xml has its own).")
    allocation: Size | None = Field(None, description="Space reserved now: 0 = sparse (default), equal to the "
                                                      "capacity = fully allocated. Used only when the volume is "
                                                      "created; afterwards it is state, not configuration.")
    format: VolumeFormat | None = Field(None, description="Default: qcow2 with a backing volume, else raw.")
    backing: str | None = Field(None, description="POOL/VOLUME this qcow2 volume is an overlay of (a linked clone).")

    def default_format(self) -> str:
        """The format the volume is made in: qcow2 on a backing volume, else raw, unless it says."""
        return self.format or ("qcow2" if self.backing else "raw")


class VolumeSpec(Model):
    pool: str
    name: str
    capacity: int
    allocation: int = 0
    format: VolumeFormat | Literal["none"] = "raw"  # none: a disk pool's partition of no particular type
    backing_path: str | None = None
    backing_format: str | None = None

    def to_element(self) -> etree._Element:
        vol = VolumeXml().update(name=self.name, capacity=self.capacity, allocation=self.allocation,
                                 format=self.format, backing_path=self.backing_path,
                                 backing_format=(self.backing_format or "raw") if self.backing_path else None)
        X.validate(vol.node, "storagevol")
        return vol.node

    def to_xml(self) -> str:
        return X.to_string(self.to_element())


class VolumeInfo(Model):
    pool: str
    name: str
    format: str | None
    capacity: int
    allocation: int
    path: str | None
    type: str | None = None
    backing: str | None = None
    used_by: list[str] = []
    running_users: list[str] = []
    unreadable: str | None = None  # why the volume's XML could not be read


class CreateResult(Model):
    volume: VolumeInfo
    warnings: list[str] = []


class TransferResult(Model):
    volume: str
    file: str
    size: int
    data_bytes: int
    hole_bytes: int


# -- who uses what: ops/rows.py (VolumeUsers, volume_users), light enough for the listings ----


def backing_first(items: list[T], key: Callable[[T], str], backing: Callable[[T], str | None]) -> list[T]:
    """Items ordered so that each comes after the volume it is backed by (a qcow2 chain's base
    first): the order to create volumes in; reversed, the order to delete them in. A backing that
    is not among the items is already there; a cycle is cut where it closes."""
    by_key = {key(item): item for item in items}
    ordered: list[T] = []
    seen: set[str] = set()

    def visit(name: str, trail: set[str]) -> None:
        if name in seen or name in trail or name not in by_key:
            return
        base = backing(by_key[name])
        if base:
            visit(base, trail | {name})
        seen.add(name)
        ordered.append(by_key[name])

    for name in by_key:
        visit(name, set())
    return ordered


# -- checks on input ----------------------------------------------------------------------
def check_volume_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or len(name) > 255 or any(c.isspace() or ord(c) < 32 for c in name):
        raise InvalidInput("name", f"{name!r} is not accepted; a volume name has no '/', no spaces, and does not start "
                                   "with '.' (e.g. test, disk1.qcow2).")


def check_own_values(name: str, capacity: str | int | None, allocation: str | int | None = None,
                     format: str | None = None, backing: str | None = None,
                     kept_backing: str | None = None) -> tuple[int, int, str]:
    """(capacity, allocation, format) of a new volume, refused on what its own values say, before
    any host is asked: `vol create` (check_new) and a spec's loader (spec/document.py) both check
    here, so a command and a file refuse alike. `kept_backing`: see check_backing."""
    check_volume_name(name)
    if capacity is None:
        raise InvalidInput("capacity", "is required; give a size such as 1000M or 5G.")
    cap = parse_size(capacity, "capacity")
    if cap <= 0:
        raise InvalidInput("capacity", f"{capacity!r} is zero; give a size such as 1000M or 5G.")
    alloc = parse_size(allocation, "allocation") if allocation is not None else 0
    if alloc > cap:
        raise InvalidInput("allocation", f"{format_size(alloc)} is more than the capacity {format_size(cap)}; "
                                           "give at most the capacity (equal means fully allocated).")
    fmt = format or VolumeRequest(name=name, backing=backing).default_format()
    if fmt not in VOLUME_FORMATS:
        raise InvalidInput("format", f"{fmt!r} is not supported; use raw or qcow2.")
    if backing:
        if fmt != "qcow2":
            raise InvalidInput("backing", f"a volume with a backing volume must be qcow2; give {term('format', 'qcow2')}.")
        check_backing(backing, kept=kept_backing)
    return cap, alloc, fmt


def check_backing(backing: str, kept: str | None = None) -> None:
    """A backing volume is POOL/VOLUME; a volume the host already has may stand on a file outside
    any pool (`kept`: its backing on the host), which virtops keeps but never makes."""
    if backing.startswith("/") and backing == kept:
        return
    if backing.startswith("/"):
        raise InvalidInput("backing", f"{backing} is a file outside any pool; a new overlay stands on a pool's "
                                      "volume: give POOL/VOLUME such as test/base.qcow2.")
    split_volume_ref(backing, "backing")


def volume_info(pool_name: str, root: etree._Element, users: VolumeUsers | None = None) -> VolumeInfo:
    return VolumeInfo(**volume_row(pool_name, root, users))


# -- operations ---------------------------------------------------------------------------
class Volumes:
    """The storage volumes of one host, addressed as POOL/NAME."""

    def __init__(self, host):
        self.host = host

    @property
    def conn(self) -> libvirt.virConnect:
        return self.host.conn

    @property
    def pools(self):
        return self.host.pools

    def _pool(self, name: str) -> libvirt.virStoragePool:
        """An existing, running pool (volumes of an inactive pool cannot be seen or changed)."""
        return self.pools.require_active(name)

    def lookup(self, ref: str) -> tuple[libvirt.virStoragePool, libvirt.virStorageVol]:
        return lookups.volume(self.conn, ref)

    def _exists(self, pool: libvirt.virStoragePool, name: str) -> bool:
        try:
            pool.storageVolLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False

    # -- listing ----------------------------------------------------------------------
    def list(self, pool_name: str) -> list[VolumeInfo]:
        """One listAllVolumes, the per-volume XML fetched concurrently, 'used by' from one domain pass."""
        pool = self._pool(pool_name)
        with libvirt_errors(f"listing volumes of pool {pool_name}"):
            return [VolumeInfo(**row) for row in volume_rows(self.conn, pool)]

    def info(self, ref: str) -> VolumeInfo:
        pool, vol = self.lookup(ref)
        with libvirt_errors(f"reading volume {ref}"):
            return volume_info(pool.name(), X.parse(vol.XMLDesc(0)), volume_users(self.conn))

    def dumpxml(self, ref: str) -> str:
        _pool, vol = self.lookup(ref)
        with libvirt_errors(f"reading volume {ref}"):
            return vol.XMLDesc(0)

    # -- create -------------------------------------------------------------------------
    def check_new(self, pool_name: str, name: str, capacity: str | int, allocation: str | int | None = None,
                  format: str | None = None, backing: str | None = None) -> tuple[VolumeSpec, list[str]]:
        """Refuse bad input before any change; returns the spec and warnings (capacity beyond free space)."""
        cap, alloc, fmt = check_own_values(name, capacity, allocation, format, backing)
        pool = self._pool(pool_name)
        if self._exists(pool, name):
            raise InvalidInput("name", f"pool {pool_name} already has a volume named {name!r}; choose another name.")
        fmt = _format_in(pool, pool_name, fmt)
        spec = VolumeSpec(pool=pool_name, name=name, capacity=cap, allocation=alloc, format=fmt)
        if backing:
            spec = self._with_backing(spec, backing)
        return spec, self._check_space(pool, pool_name, spec.capacity, spec.allocation)

    def _with_backing(self, spec: VolumeSpec, backing: str) -> VolumeSpec:
        if spec.format != "qcow2":  # the pool's own format (a disk pool's partitions are raw)
            raise InvalidInput("backing", f"a volume with a backing volume must be qcow2; give {term('format', 'qcow2')}.")
        base_pool, base_name = split_volume_ref(backing, "backing")
        try:
            _pool, base = self.lookup(f"{base_pool}/{base_name}")
        except (NotFound, InvalidInput):
            raise InvalidInput("backing", f"no volume {backing} to use as backing; give an existing POOL/VOLUME.") from None
        base_info = volume_info(base_pool, X.parse(base.XMLDesc(0)))
        if spec.capacity < base_info.capacity:
            raise InvalidInput("capacity", f"{format_size(spec.capacity)} is smaller than the backing volume's "
                                             f"{format_size(base_info.capacity)}; give at least that.")
        return spec.model_copy(update={"backing_path": base_info.path, "backing_format": base_info.format or "raw"})

    @staticmethod
    def _check_space(pool: libvirt.virStoragePool, pool_name: str, capacity: int, allocation: int) -> list[str]:
        lookups.when_pool_free(lambda: pool.refresh(0))  # another client's volume may be in the making
        available = pool.info()[3]
        if allocation > available:
            raise InvalidInput("allocation", f"{format_size(allocation)} is more than pool {pool_name} has free "
                                               f"({format_size(available)}); allocate less or use a sparse volume (allocation 0).")
        if capacity > available:
            return [f"capacity {format_size(capacity)} is more than pool {pool_name} has free ({format_size(available)}); "
                    "the volume will fail to fill up completely."]
        return []

    def create_from(self, pool_name: str, request: VolumeRequest, progress: Progress | None = None) -> CreateResult:
        """`create` of a VolumeRequest, the model every face builds (the CLI, the REST API, a spec)."""
        return self.create(pool_name, **request.model_dump(include=set(VolumeRequest.model_fields)), progress=progress)

    @locks_host("vol create")
    def create(self, pool_name: str, name: str, capacity: str | int, allocation: str | int | None = None,
               format: str | None = None, backing: str | None = None, progress: Progress | None = None) -> CreateResult:
        spec, warnings = self.check_new(pool_name, name, capacity, allocation, format, backing)
        pool = self._pool(pool_name)
        with _watch_allocation(pool, name, spec.allocation, progress), libvirt_errors(f"creating volume {pool_name}/{name}"):
            with _needing_device_mapper(f"creating volume {pool_name}/{name}"):
                vol = lookups.when_pool_free(lambda: pool.createXML(spec.to_xml(), 0))
        with libvirt_errors(f"reading volume {pool_name}/{name}"):
            return CreateResult(volume=volume_info(pool_name, X.parse(vol.XMLDesc(0))), warnings=warnings)

    @locks_host("vol create")
    def define_xml(self, pool_name: str, xml_text: str) -> VolumeInfo:
        """A volume made from libvirt's XML as given (a spec's `xml:`, for formats virtops does not
        make): one call, which libvirt undoes itself when it fails."""
        pool = self._pool(pool_name)
        name = VolumeXml(X.parse_strict(xml_text)).name
        with libvirt_errors(f"creating volume {pool_name}/{name}"):
            vol = pool.createXML(xml_text, 0)
        with libvirt_errors(f"reading volume {pool_name}/{name}"):
            return volume_info(pool_name, X.parse(vol.XMLDesc(0)))

    @locks_host("vol clone")
    def clone(self, ref: str, new_name: str, linked: bool = False, progress: Progress | None = None) -> CreateResult:
        pool, source = self.lookup(ref)
        pool_name = pool.name()
        src = volume_info(pool_name, X.parse(source.XMLDesc(0)))
        refuse_if_written(self.host.uri, src.path, ref)  # a copy of half an upload
        if linked:
            return self.create(pool_name, new_name, src.capacity, 0, "qcow2", backing=ref)
        spec, warnings = self.check_new(pool_name, new_name, src.capacity, src.allocation, src.format or "raw")
        with _watch_allocation(pool, new_name, src.allocation, progress), libvirt_errors(f"cloning volume {ref}"):
            vol = pool.createXMLFrom(spec.to_xml(), source, 0)
        return CreateResult(volume=volume_info(pool_name, X.parse(vol.XMLDesc(0))), warnings=warnings)

    # -- change -------------------------------------------------------------------------
    @locks_host("vol resize")
    def resize(self, ref: str, size: str | int, shrink: bool = False, force: bool = False) -> CreateResult:
        """A new capacity; shrinking a disk of a running VM needs force as well as shrink."""
        pool, vol = self.lookup(ref)
        current = volume_info(pool.name(), X.parse(vol.XMLDesc(0)))
        refuse_if_written(self.host.uri, current.path, ref)
        new = parse_size(size, "size")
        if new <= 0:
            raise InvalidInput("size", f"{size!r} is zero; give the new capacity, e.g. 2G.")
        if new == current.capacity:
            raise InvalidInput("size", f"volume {ref} already has a capacity of {format_size(new)}.")
        flags = 0
        if new < current.capacity:
            if not shrink:
                # A way out the operator may take (the console's checkbox, the CLI's --shrink), not a bad value.
                raise NeedsOption(f"size: {format_size(new)} is smaller than the capacity {format_size(current.capacity)}; "
                                  f"give {term('shrink', True)} to shrink it (data past the new end is lost).",
                                  ways=[WayOut("shrink", True, "shrink it, losing the data past the new end")])
            if new < current.allocation:
                raise InvalidInput("size", f"{format_size(new)} is below the space the volume already uses "
                                           f"({format_size(current.allocation)}); it cannot shrink below that.")
            flags |= libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK
            self._refuse_shrinking_in_use(pool, vol, ref, force)
        warnings = self._check_space(pool, pool.name(), new - current.capacity, 0) if new > current.capacity else []
        with libvirt_errors(f"resizing volume {ref}"):
            vol.resize(new, flags)
            return CreateResult(volume=volume_info(pool.name(), X.parse(vol.XMLDesc(0))), warnings=warnings)

    @locks_host("vol wipe")
    def wipe(self, ref: str, algorithm: str = "zero", force: bool = False) -> list[str]:
        if algorithm not in WIPE_ALGORITHMS:
            raise InvalidInput("algorithm", f"{algorithm!r} is not known; use one of {', '.join(WIPE_ALGORITHMS)}.")
        pool, vol = self.lookup(ref)
        users = self._users_or_refuse(pool, vol, ref, force, "wiping")
        with libvirt_errors(f"wiping volume {ref}"):
            vol.wipePattern(WIPE_ALGORITHMS[algorithm], 0)
        return users

    @locks_host("vol delete")
    def delete(self, ref: str, force: bool = False) -> list[str]:
        """Delete a volume no VM references; with force, delete anyway and return the VMs affected."""
        pool, vol = self.lookup(ref)
        users = self._users_or_refuse(pool, vol, ref, force, "deleting")
        with libvirt_errors(f"deleting volume {ref}"):
            lookups.when_pool_free(lambda: vol.delete(0))
        return users

    def impact(self, ref: str) -> Impact:
        """What deleting volume POOL/VOLUME costs, before it is done: the VMs and overlays built on
        it, on the facts `delete` refuses on, and the option it would then need."""
        pool, vol = self.lookup(ref)
        info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)), volume_users(self.conn))
        overlays = self.overlays_of(info.path)
        running = [vm for vm in info.used_by if vm in info.running_users]
        costs = ["its data is gone for good"]
        if info.used_by:
            costs.append(f"VM(s) {', '.join(info.used_by)} lose a disk" +
                         (f" (running: {', '.join(running)}, whose guests see it vanish under them)" if running else ""))
        if overlays:
            costs.append(f"the volumes built on it ({', '.join(overlays)}) lose their backing file")
        return Impact(action="delete", subject=f"volume {ref}", guests=running, cost="; ".join(costs) + ".",
                      option="force" if info.used_by or overlays else None)

    def _users_or_refuse(self, pool, vol, ref: str, force: bool, doing: str) -> list[str]:
        """VMs that reference the volume, and volumes built on it (qcow2 overlays whose backing
        file it is): changing it under them corrupts what they see, so that needs --force."""
        info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)), volume_users(self.conn))
        refuse_if_written(self.host.uri, info.path, ref)
        overlays = self.overlays_of(info.path)
        if info.used_by and not force:
            running = [vm for vm in info.used_by if vm in info.running_users]
            loss = f" (running: {', '.join(running)}, whose guests see it change under them)" if running else ""
            raise NeedsOption(f"volume {ref} is used by VM(s) {', '.join(info.used_by)}{loss}; detach it first, "
                              f"or give {term('force', True)} to go on with {doing} it anyway.")
        if overlays and not force:
            raise NeedsOption(f"volume {ref} is the backing file of {', '.join(overlays)}; delete those first, "
                              f"or give {term('force', True)} to go on with {doing} it anyway.")
        return info.used_by + [f"volume {o}" for o in overlays]

    def _refuse_shrinking_in_use(self, pool, vol, ref: str, force: bool) -> None:
        info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)), volume_users(self.conn))
        if info.running_users and not force:
            raise NeedsOption(f"volume {ref} is a disk of running VM(s) {', '.join(info.running_users)}; shrinking "
                              "it under the guest cuts off data its file systems may hold; shut the VM down first, "
                              f"or give {term('force', True)} to shrink it anyway.")

    def overlays_of(self, path: str | None) -> list[str]:
        """POOL/VOL of every volume, in any running pool, whose backing file is `path`."""
        if not path:
            return []
        vols = [(pool.name(), vol) for pool in self.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
                for vol in pool.listAllVolumes()]
        with ThreadPoolExecutor(max_workers=LIST_WORKERS) as workers:
            roots = workers.map(volume_xml_or_none, [vol for _pool, vol in vols])
        return sorted(f"{pool}/{vol.name()}" for (pool, vol), root in zip(vols, roots)
                      if root is not None and VolumeXml(root).backing_path == path)

    # -- sparse streams ---------------------------------------------------------------------
    def upload(self, ref: str, file: str, force: bool = False, progress: Progress | None = None) -> TransferResult:
        try:
            size = os.stat(file).st_size
        except OSError as err:
            raise InvalidInput("file", f"{file}: {err.strerror.lower()}; give an existing image file.") from None
        counter = _Counter(size, progress)
        fd = os.open(file, os.O_RDONLY)
        try:
            with self._uploading(ref, size, file, force) as vol, libvirt_errors(f"uploading {file} to {ref}"):
                for offset, length in data_ranges(fd):
                    counter.advance(hole=offset - counter.data - counter.holes)
                    _send_range(self.conn.newStream(0), vol, lambda at, n: os.pread(fd, n, at), offset, length, counter)
                counter.advance(hole=size - counter.data - counter.holes)
        finally:
            os.close(fd)
        return TransferResult(volume=ref, file=file, size=size, data_bytes=counter.data, hole_bytes=counter.holes)

    def upload_chunks(self, ref: str, size: int, chunks: Iterable[bytes], name: str = "the upload", force: bool = False,
                      progress: Progress | None = None) -> TransferResult:
        """An image of SIZE bytes that arrives in pieces (a browser's upload, never whole in
        memory) written in place: blocks of zeros are not written, so they stay holes (the
        volume is sparse or cleared first), and runs of data go in bounded ranges."""
        with self._uploading(ref, size, name, force) as vol:
            return self._write_pieces(vol, ref, size, chunks, name, progress)

    def _write_pieces(self, vol: libvirt.virStorageVol, ref: str, size: int, chunks: Iterable[bytes], name: str,
                      progress: Progress | None) -> TransferResult:
        counter = _Counter(size, progress)
        run_start, run = 0, bytearray()

        def flush() -> None:
            if run:
                data = bytes(run)
                _send_range(self.conn.newStream(0), vol, lambda at, n: data[at - run_start:at - run_start + n],
                            run_start, len(data), counter)
                run.clear()

        offset = 0
        with libvirt_errors(f"uploading {name} to {ref}"):
            for block in _blocks(chunks, UPLOAD_BLOCK):
                if offset + len(block) > size:
                    raise InvalidInput("body", f"{name} sent more than the {format_size(size)} it announced; "
                                               "send the file as it is.")
                if block == (ZERO_BLOCK if len(block) == UPLOAD_BLOCK else bytes(len(block))):
                    flush()
                    counter.advance(hole=len(block))
                else:
                    if not run:
                        run_start = offset
                    run += block
                    if len(run) >= UPLOAD_RUN:
                        flush()
                offset += len(block)
            flush()
        if offset != size:
            raise VirtopsError(f"{name} ended after {format_size(offset)} of {format_size(size)}; volume {ref} holds "
                               "that part of it only; upload it again.")
        return TransferResult(volume=ref, file=name, size=size, data_bytes=counter.data, hole_bytes=counter.holes)

    def upload_new(self, pool_name: str, name: str, size: int, chunks: Iterable[bytes]) -> TransferResult:
        """A new raw volume NAME of the image's SIZE in the pool, filled from chunks as
        upload_chunks does (a browser's ISO for a VM's CD-ROM); when the upload fails the volume is
        removed again, so a failed upload leaves nothing behind."""
        from virtops.base.undo import undo_on_failure

        ref = f"{pool_name}/{name}"
        with undo_on_failure() as undo:
            self.create(pool_name, name, size, 0, "raw")
            undo.add(lambda: self.delete(ref, force=True), f"created volume {ref}")
            return self.upload_chunks(ref, size, chunks, name=name)

    @contextlib.contextmanager
    def _uploading(self, ref: str, size: int, name: str, force: bool) -> Iterator[libvirt.virStorageVol]:
        """The checks of an upload and the clearing of the volume, under the host's lock (no VM
        may start using the volume between the check and the clearing); the transfer itself
        takes minutes and runs without it, the volume marked as being written meanwhile
        (base/hostlock.writing_volume), which attach, wipe, delete, resize and clone refuse."""
        with contextlib.ExitStack() as marked:
            with host_lock(self.host.uri, "vol upload"):
                pool, vol = self.lookup(ref)
                info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)))
                if size > info.capacity:
                    raise InvalidInput("file", f"{name} is {format_size(size)}, larger than volume {ref} "
                                               f"({format_size(info.capacity)}); resize the volume first.")
                self._users_or_refuse(pool, vol, ref, force, "overwriting")
                marked.enter_context(writing_volume(self.host.uri, info.path or ref, ref, "vol upload"))
                if info.allocation > 0:
                    # libvirt's sparse upload skips the holes without clearing them, so old data would show
                    # through; zeroing first (libvirt truncates a sparse file rather than writing) prevents that.
                    with libvirt_errors(f"clearing volume {ref} before the upload"):
                        vol.wipePattern(libvirt.VIR_STORAGE_VOL_WIPE_ALG_ZERO, 0)
            yield vol

    def download(self, ref: str, file: str, overwrite: bool = False, progress: Progress | None = None) -> TransferResult:
        pool, vol = self.lookup(ref)
        if os.path.exists(file) and not overwrite:
            raise InvalidInput("file", f"{file} exists; give another file name or {term('overwrite', True)}.")
        info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)))
        refuse_if_written(self.host.uri, info.path, ref)  # half an upload is no image
        counter = _Counter(info.capacity, progress)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        ok = False
        try:
            stream = self.conn.newStream(0)
            with libvirt_errors(f"downloading {ref} to {file}"):
                vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
                _recv_sparse(stream, fd, counter)
            ok = True
        finally:
            os.close(fd)
            if not ok:
                os.unlink(file)  # no half-written image left behind
        return TransferResult(volume=ref, file=file, size=os.stat(file).st_size,
                              data_bytes=counter.data, hole_bytes=counter.holes)

    def download_chunks(self, ref: str) -> tuple[VolumeInfo, Iterator[bytes]]:
        """The volume's content as pieces of bytes, for a face that cannot write holes (a
        browser's download): the holes arrive from the daemon as lengths (sparse stream) and are
        made zeros here, piece by piece, so nothing is held whole."""
        pool, vol = self.lookup(ref)
        info = volume_info(pool.name(), X.parse(vol.XMLDesc(0)))
        refuse_if_written(self.host.uri, info.path, ref)  # half an upload is no image
        stream = self.conn.newStream(0)
        with libvirt_errors(f"downloading {ref}"):
            vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        return info, _sparse_pieces(stream, ref)

def streamed_length(info: VolumeInfo) -> int | None:
    """The bytes a download of the volume carries, where they are known before it runs: a raw
    volume (file, logical volume) is as long as its capacity, holes included; another format's file
    is not (a qcow2 file grows with its data), so None."""
    return info.capacity if info.format == "raw" else None


def _format_in(pool: libvirt.virStoragePool, pool_name: str, fmt: str) -> str:
    """A volume of a disk pool is a partition, of a logical pool an LV: raw data. libvirt takes a
    disk pool's volume format for a partition type (and refuses raw): there it is "none"."""
    pool_type = PoolXml(X.parse(pool.XMLDesc(0))).type
    if pool_type not in ON_A_DEVICE:
        return fmt
    if fmt != "raw":
        raise InvalidInput("format", f"a volume of {pool_type} pool {pool_name} is a "
                                       f"{'partition' if pool_type == 'disk' else 'logical volume'}, raw; "
                                       f"give no {term('format')}.")
    return "none" if pool_type == "disk" else fmt


NO_DEVICE_MAPPER = "/dev/mapper/control: open failed"  # what LVM says where the kernel has no device-mapper


@contextlib.contextmanager
def _needing_device_mapper(doing: str):
    """A logical volume needs the kernel's device-mapper; where the host's kernel has none, libvirt's
    error is lvcreate's whole command line with the reason at its end. libvirt removes the LV again."""
    try:
        yield
    except libvirt.libvirtError as err:
        if NO_DEVICE_MAPPER in (err.get_error_message() or ""):
            raise VirtopsError(f"{doing} failed: the host's kernel has no device-mapper ({NO_DEVICE_MAPPER}), "
                               "which LVM needs for a logical volume; nothing was created.") from err
        raise


class _watch_allocation:
    """While a long libvirt call allocates a volume, report its growing allocation (best effort)."""

    def __init__(self, pool: libvirt.virStoragePool, name: str, total: int, progress: Progress | None):
        self.pool, self.name, self.total, self.progress = pool, name, total, progress
        self.done = threading.Event()

    def __enter__(self):
        if self.progress and self.total > 0:
            threading.Thread(target=self._poll, daemon=True).start()
        return self

    def _poll(self) -> None:
        while not self.done.wait(POLL_S):
            try:
                allocated = self.pool.storageVolLookupByName(self.name).info()[2]
                self.progress(min(allocated, self.total), self.total)
            except libvirt.libvirtError:
                continue  # not there yet

    def __exit__(self, exc_type, *_):
        self.done.set()
        if self.progress and self.total > 0 and exc_type is None:
            self.progress(self.total, self.total)
        return False


# -- sparse stream handlers: holes found with SEEK_DATA/SEEK_HOLE cross the wire as lengths ------
class _Counter:
    def __init__(self, total: int, progress: Progress | None):
        self.total, self.progress = total, progress
        self.data = self.holes = 0

    def advance(self, data: int = 0, hole: int = 0) -> None:
        self.data += data
        self.holes += hole
        if self.progress:
            self.progress(min(self.data + self.holes, self.total), self.total)


def _send_range(stream: libvirt.virStream, vol: libvirt.virStorageVol, read_at: Callable[[int, int], bytes],
                offset: int, length: int, counter: _Counter) -> None:
    """LENGTH bytes of the image from OFFSET (read_at(offset, n) reads them) written in place at the
    same offset of the volume.
    Not libvirt's sparse upload: the daemon truncates the volume's file at every hole it is sent
    (and extends it again with the data after it), so a killed upload left the volume cut short,
    smaller than its capacity; written range by range, the file never shrinks."""
    left = [length]

    def read(_stream, nbytes: int, _opaque):
        chunk = read_at(offset + length - left[0], min(nbytes, STREAM_CHUNK, left[0]))
        left[0] -= len(chunk)
        counter.advance(data=len(chunk))
        return chunk

    try:
        vol.upload(stream, offset, length, 0)
        stream.sendAll(read, None)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise


# Holes shorter than this are sent as zeros with the data around them: fewer ranges (one stream
# each) for a fragmented image, at the price of a few zeros on the wire.
MIN_HOLE = 1024 * 1024


def data_ranges(fd: int) -> list[tuple[int, int]]:
    """(offset, length) of the file's data, found with SEEK_DATA/SEEK_HOLE; what lies between is
    holes, which read as zeros and need not cross the wire (the volume is zeroed before)."""
    end = os.fstat(fd).st_size
    ranges: list[tuple[int, int]] = []
    offset = 0
    while offset < end:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        stop = os.lseek(fd, start, os.SEEK_HOLE)
        if ranges and start - sum(ranges[-1]) < MIN_HOLE:
            ranges[-1] = (ranges[-1][0], stop - ranges[-1][0])
        else:
            ranges.append((start, stop - start))
        offset = stop
    return ranges


def _recv_sparse(stream: libvirt.virStream, fd: int, counter: _Counter) -> None:
    def write(_stream, buf: bytes, _opaque):
        counter.advance(data=len(buf))
        return os.write(fd, buf)

    def skip(_stream, length: int, _opaque):
        # Seek past the hole and extend the file: the hole stays a hole on this side too.
        counter.advance(hole=length)
        return os.ftruncate(fd, os.lseek(fd, length, os.SEEK_CUR))

    try:
        stream.sparseRecvAll(write, skip, None)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The pieces regrouped into blocks of SIZE bytes (the last may be shorter), so a block of
    zeros is found at the same offsets however the pieces were cut."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def _sparse_pieces(stream: libvirt.virStream, ref: str) -> Iterator[bytes]:
    """What sparseRecvAll gives its two handlers, as one sequence of pieces: data as it comes,
    a hole as pieces of zeros; a consumer that stops early aborts the stream."""
    try:
        with libvirt_errors(f"downloading {ref}"):
            while True:
                got = stream.recvFlags(STREAM_CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                if got == -3:
                    hole = stream.recvHole(0)
                    while hole > 0:
                        yield bytes(min(hole, STREAM_CHUNK))
                        hole -= STREAM_CHUNK
                    continue
                if isinstance(got, int):
                    raise VirtopsError(f"downloading {ref}: the daemon's stream answered {got}.")
                if not got:
                    break
                yield got
            stream.finish()
    except BaseException:
        _abort(stream)
        raise


def _abort(stream: libvirt.virStream) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass
