"""Whole-host backup: every pool, volume (metadata), network and domain, with a manifest of
checksums; restore in dependency order that converges when re-run; diff against the live host.

An archive (a .tar.gz or a directory) holds:
    manifest.json            host, libvirt version, time, and per object: file, sha256, flags
    pool/NAME.xml            exactly what libvirt gives, so `virsh pool-define` takes it
    volume/POOL/VOL.xml      the volume's XML (name, format, capacity, allocation, backing)
    network/NAME.xml         `virsh net-define` takes it
    domain/NAME.xml          `virsh define` takes it (inactive XML)
    data/POOL/VOL.extents    with --with-data: the volume's size and its data extents (JSON)
    data/POOL/VOL.data       the bytes of those extents, one after another: holes take no space
"""
from __future__ import annotations

import difflib
import errno
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
from lxml import etree
from pydantic import BaseModel, ConfigDict, ValidationError

from virtops.backup import inventory
from virtops.base import leftovers
from virtops.base.errors import VirtopsError, libvirt_errors, one_sentence, term
from virtops.daemon.facts import version_string
from virtops.host import Host
from virtops.backup.inventory import KIND_ORDER, HostObject
from virtops.xmlmodels import doc as X

FORMAT_VERSION = 1
KINDS = ("pools", "volumes", "networks", "vms")
KIND_OF_OPTION = {"pools": "pool", "volumes": "volume", "networks": "network", "vms": "domain"}


@dataclass
class Archive:
    manifest: dict
    objects: list[HostObject]
    root: Path | None = None  # where the archive's files can be read (a directory)
    _unpacked: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def data_for(self, volume: str) -> dict | None:
        return next((d for d in self.manifest.get("data") or [] if d["volume"] == volume), None)


@dataclass
class RestoreStep:
    action: str  # create | replace | skip | refuse
    obj: HostObject
    reason: str = ""


@dataclass
class RestoreResult:
    done: list[str] = field(default_factory=list)
    failed: str | None = None
    remaining: list[str] = field(default_factory=list)


# -- create ---------------------------------------------------------------------------
def create_backup(host: Host, output: Path, with_data: list[str] | None = None) -> Archive:
    """Write the host's configuration to `output`: a directory, or a .tar.gz file. Volumes named
    in `with_data` (POOL/VOL) also get their data, read through libvirt's sparse streams."""
    with libvirt_errors("reading the host's configuration"):
        objects = inventory.read_all(host.conn)
        manifest = {
            "format": FORMAT_VERSION,
            "host": host.uri,
            "hostname": host.conn.getHostname(),
            "libvirt_version": version_string(host.conn.getLibVersion()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "objects": [],
        }
    files: dict[str, bytes | Path] = {}
    for obj in objects:
        path = f"{obj.kind}/{obj.name}.xml"
        data = obj.xml.encode()
        files[path] = data
        manifest["objects"].append({"kind": obj.kind, "name": obj.name, "file": path,
                                    "sha256": hashlib.sha256(data).hexdigest(), "uuid": obj.uuid,
                                    "autostart": obj.autostart, "active": obj.active})
    with tempfile.TemporaryDirectory(prefix="virtops-backup-") as scratch:
        manifest["data"] = [_save_volume_data(host, ref, Path(scratch), files) for ref in with_data or []]
        files["manifest.json"] = json.dumps(manifest, indent=2).encode()
        _write(output, files)
    return Archive(manifest, objects)


def _save_volume_data(host: Host, ref: str, scratch: Path, files: dict[str, bytes | Path]) -> dict:
    """Download the volume sparsely, then keep only its data extents."""
    image = scratch / f"{len(files)}.img"
    host.volumes.download(ref, str(image))
    extents_path, data_path = f"data/{ref}.extents", f"data/{ref}.data"
    packed = scratch / f"{len(files)}.data"
    extents = pack_extents(image, packed)
    image.unlink()
    files[extents_path] = json.dumps(extents).encode()
    files[data_path] = packed
    return {"volume": ref, "extents": extents_path, "data": data_path,
            "extents_sha256": hashlib.sha256(files[extents_path]).hexdigest(), "data_sha256": _sha256_file(packed)}


def pack_extents(image: Path, packed: Path) -> dict:
    """{size, extents: [[offset, length], ...]} of a sparse file, and its data extents into `packed`."""
    extents = []
    with image.open("rb") as src, packed.open("wb") as out:
        fd, size, offset = src.fileno(), os.fstat(src.fileno()).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append([start, end - start])
            src.seek(start)
            _copy(src, out, end - start)
            offset = end
    return {"size": size, "extents": extents}


def unpack_extents(extents: dict, packed: Path, image: Path) -> None:
    with packed.open("rb") as src, image.open("wb") as out:
        out.truncate(extents["size"])
        for start, length in extents["extents"]:
            out.seek(start)
            _copy(src, out, length)


def _copy(src, out, length: int, chunk: int = 1 << 20) -> None:
    while length > 0:
        block = src.read(min(chunk, length))
        if not block:
            raise VirtopsError("backup data ends before its extents do; the archive is corrupt.")
        out.write(block)
        length -= len(block)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_output_name(host: Host) -> Path:
    return Path(f"virtops-backup-{host.conn.getHostname()}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")


def _write(output: Path, files: dict[str, bytes]) -> None:
    if output.suffixes[-2:] == [".tar", ".gz"] or output.suffix == ".tgz":
        tmp = output.with_name(output.name + ".partial")
        with tarfile.open(tmp, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.mtime, info.mode = int(time.time()), 0o600
                if isinstance(data, Path):
                    info.size = data.stat().st_size
                    with data.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tmp.rename(output)
        return
    if output.exists() and any(output.iterdir()):
        raise VirtopsError(f"output: directory {output} is not empty; give an empty or new directory, or a FILE.tar.gz.")
    for name, data in files.items():
        target = output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            with data.open("rb") as src, target.open("wb") as out:
                _copy(src, out, data.stat().st_size)
        else:
            target.write_bytes(data)


# -- read and verify ------------------------------------------------------------------
# Reading an archive is bounded, so a hostile or broken one is refused in seconds, in one sentence,
# before it fills the disk. A host's configuration is a few megabytes; only --with-data volume
# data is large, and it is bounded by the scratch directory's free space.
MAX_ARCHIVE_BYTES = 1024**4          # 1 TiB, compressed
MAX_MEMBERS = 100_000                # files and folders
MAX_PATH_DEPTH = 3                   # volume/POOL/VOL.xml, data/POOL/VOL.data
MAX_FILE_BYTES = 16 * 1024**2        # manifest, XML and extents files, each
MAX_UNPACKED_BYTES = 1024**4         # 1 TiB in all, volume data included
FREE_SPACE_RESERVE = 256 * 1024**2   # left free in the scratch directory
SCRATCH_PREFIX = "virtops-restore-"


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    name: str
    file: str
    sha256: str
    uuid: str | None = None
    autostart: bool = False
    active: bool = False


class DataEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    volume: str
    extents: str
    data: str
    extents_sha256: str
    data_sha256: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    objects: list[ManifestEntry]
    data: list[DataEntry] = []


def read_backup(source: Path, with_data: bool = True) -> Archive:
    """Load and verify an archive completely before anything may change: manifest, every file
    present, every checksum right, every file the object its manifest entry says. Without
    `with_data` (a dry run, a diff) volume data is neither unpacked nor checked."""
    if source.is_dir():
        return _read_root(source, source, with_data)
    clean_stale_scratch()
    # A name no other read shares, so the cleanup below finds this read's folder even when the
    # CLI's SIGTERM interrupts its making (after mkdir, before `unpacked` holds it).
    own = f"{SCRATCH_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-"
    try:
        unpacked = tempfile.TemporaryDirectory(prefix=own)
        root = Path(unpacked.name)
        _unpack(source, root, with_data)
        archive = _read_root(source, root, with_data)
    except BaseException:  # also KeyboardInterrupt and the CLI's SIGTERM: no scratch is left behind
        for folder in Path(tempfile.gettempdir()).glob(f"{own}*"):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    archive._unpacked = unpacked
    return archive


def _read_root(source: Path, root: Path, with_data: bool) -> Archive:
    manifest_file = root / "manifest.json"
    if not manifest_file.is_file():
        raise VirtopsError(f"backup {source}: no manifest.json; this is not a virtops backup.")
    manifest = _read_manifest(source, manifest_file)
    checked = Manifest.model_validate(manifest)  # _read_manifest refused whatever this would
    objects = [_verified_object(source, root, entry) for entry in checked.objects]
    _refuse_duplicates(source, objects)
    if with_data:
        for data in checked.data:
            _verify_file(source, root, data.extents, data.extents_sha256)
            _verify_file(source, root, data.data, data.data_sha256)
    return Archive(manifest, objects, root)


def _read_manifest(source: Path, path: Path) -> dict:
    try:
        manifest = json.loads(_read_bounded(source, path, "manifest.json"))
        Manifest.model_validate(manifest)
    except ValueError as err:  # json's and pydantic's errors
        raise VirtopsError(f"backup {source}: manifest.json is damaged ({_manifest_problem(err)}).") from None
    return manifest


def _manifest_problem(err: ValueError) -> str:
    if not isinstance(err, ValidationError):
        return str(err)
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the manifest"
    if first["type"] == "missing":
        return f"{where} is missing"
    return f"{where}: {first['msg'].lower()}, not {first['input']!r:.60}"


def _read_bounded(source: Path, path: Path, name: str) -> str:
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise VirtopsError(f"backup {source}: {name} is larger than the {_mib(MAX_FILE_BYTES)} a backup's "
                           "configuration file may be; the archive is not a virtops backup.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VirtopsError(f"backup {source}: {name} is not UTF-8 text; the archive is corrupt.") from None


def _verify_file(source: Path, root: Path, name: str, sha256: str) -> Path:
    path = root / name
    if not path.is_file() or root.resolve() not in path.resolve().parents:
        raise VirtopsError(f"backup {source}: {name} is listed in the manifest but missing; the archive is incomplete.")
    if _sha256_file(path) != sha256:
        raise VirtopsError(f"backup {source}: {name} does not match its checksum; the archive is corrupt or was altered.")
    return path


XML_ROOTS = {"pool": "pool", "volume": "volume", "network": "network", "domain": "domain"}


def _verified_object(source: Path, root: Path, entry: ManifestEntry) -> HostObject:
    """The file's checksum, and that it is the object its entry names: kind (root element),
    name and UUID. A checksum only says the file was not changed after the manifest was written."""
    if entry.kind not in KIND_ORDER:
        raise VirtopsError(f"backup {source}: {entry.file} has unknown kind {entry.kind!r}; "
                           f"a backup holds {', '.join(KIND_ORDER)} objects.")
    expected_file = f"{entry.kind}/{entry.name}.xml"
    if entry.file != expected_file:
        raise VirtopsError(f"backup {source}: the manifest lists {entry.kind} {entry.name!r} in {entry.file!r}; "
                           f"a backup keeps it in {expected_file!r}.")
    path = _verify_file(source, root, entry.file, entry.sha256)
    data = _read_bounded(source, path, entry.file)
    try:
        node = X.parse_strict(data)
    except etree.XMLSyntaxError as err:
        raise VirtopsError(f"backup {source}: {entry.file} is not valid XML ({err}).") from None
    _refuse_other_object(source, entry, node)
    return HostObject(entry.kind, entry.name, data, entry.uuid, entry.autostart, entry.active)


def _refuse_other_object(source: Path, entry: ManifestEntry, node) -> None:
    name = entry.name.split("/", 1)[1] if entry.kind == "volume" and "/" in entry.name else entry.name
    held_name, held_uuid = node.findtext("name"), node.findtext("uuid")
    held = f"<{node.tag}> {held_name!r}" + (f" with UUID {held_uuid}" if held_uuid else "")
    wanted = f"{entry.kind} {name!r}" + (f" with UUID {entry.uuid}" if entry.uuid else "")
    uuid_differs = entry.uuid is not None and (held_uuid or "").lower() != entry.uuid.lower()
    if node.tag != XML_ROOTS[entry.kind] or held_name != name or uuid_differs:
        raise VirtopsError(f"backup {source}: {entry.file} holds {held}, but the manifest says it is {wanted}; "
                           "the archive was altered, nothing was changed.")


def _refuse_duplicates(source: Path, objects: list[HostObject]) -> None:
    seen: set[str] = set()
    for obj in objects:
        if obj.key in seen:
            raise VirtopsError(f"backup {source}: the manifest lists {obj.key} twice; the archive was altered.")
        seen.add(obj.key)


def _unpack(source: Path, root: Path, with_data: bool) -> None:
    """Unpack member by member, each header checked against the limits before its bytes are
    written; volume data is skipped unless wanted."""
    size = source.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise VirtopsError(f"backup {source}: the archive is {size} bytes, more than the "
                           f"{MAX_ARCHIVE_BYTES // 1024**4} TiB a backup may be.")
    budget = _Budget(source, root)
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                budget.admit(member, with_data)
                if with_data or not _is_volume_data(member.name):
                    tar.extract(member, root, filter="data")  # a second guard: no links out, no devices
                tar.members.clear()  # read once, in order: keep no index of a huge archive
    except tarfile.FilterError as err:
        raise VirtopsError(f"backup {source}: member {err.tarinfo.name!r} is refused ({err}); "
                           "a virtops backup holds only files inside its own folder.") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise VirtopsError(f"backup {source}: the scratch directory {root.parent} ran out of space.") from None
        raise VirtopsError(f"backup {source}: is neither a readable .tar.gz archive nor a backup directory.") from err


def _is_volume_data(name: str) -> bool:
    return name.startswith("data/") and name.endswith(".data")


class _Budget:
    """What the members of one archive may take: a count, a depth, bytes per file and in all."""

    def __init__(self, source: Path, root: Path):
        self.source, self.members, self.total = source, 0, 0
        free = shutil.disk_usage(root).free
        self.room = min(MAX_UNPACKED_BYTES, max(free - FREE_SPACE_RESERVE, 0))
        self.where = root.parent

    def admit(self, member: tarfile.TarInfo, with_data: bool) -> None:
        name = member.name
        self.members += 1
        if self.members > MAX_MEMBERS:
            self._refuse(f"it has more than {MAX_MEMBERS} members, more than a backup may have")
        parts = Path(name).parts
        if name.startswith("/") or ".." in parts:
            self._refuse(f"member {name!r} escapes the archive's folder (an absolute path or '..')")
        if len(parts) > MAX_PATH_DEPTH:
            self._refuse(f"member {name!r} is {len(parts)} levels deep; a backup's files are at most "
                         f"{MAX_PATH_DEPTH} deep")
        if not (member.isfile() or member.isdir()):
            self._refuse(f"member {name!r} is a {_member_type(member)}; a backup holds only files and folders")
        if _is_volume_data(name):
            if not with_data:
                return
        elif member.size > MAX_FILE_BYTES:
            self._refuse(f"member {name!r} unpacks to {member.size} bytes; a backup's configuration files are "
                         f"at most {_mib(MAX_FILE_BYTES)} each")
        self.total += member.size
        if self.total > self.room:
            self._refuse(f"its files unpack to more than {self.room} bytes (reached at {name!r}), more than "
                         f"the {_limit_text(self.room)} it may take in {self.where}")

    def _refuse(self, why: str) -> None:
        raise VirtopsError(f"backup {self.source}: {why}; nothing was restored.")


def _member_type(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isfifo():
        return "named pipe"
    if member.ischr() or member.isblk():
        return "device"
    return "special file"


def _mib(size: int) -> str:
    return f"{size // 1024**2} MiB"


def _limit_text(room: int) -> str:
    return "1 TiB" if room == MAX_UNPACKED_BYTES else f"{room} bytes (its free space, less {_mib(FREE_SPACE_RESERVE)})"


def clean_stale_scratch() -> None:
    """Remove scratch folders that killed runs left behind: their names carry their pid."""
    scratch = Path(tempfile.gettempdir())
    for folder in scratch.glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid() or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- restore --------------------------------------------------------------------------
# A restore records, before each object it makes, which one and from what definition
# (base/leftovers.py): a restore killed (or failed) midway leaves that object half-made (a pool
# defined but not started, a volume whose data is half there, a network not yet autostart), and
# the next restore finishes exactly that one instead of calling it "exists and differs".
RUN_KEY = "backup restore"


def plan_restore(host: Host, archive: Archive, only: list[str] | None = None, replace: bool = False) -> list[RestoreStep]:
    kinds = {KIND_OF_OPTION[o] for o in only} if only else set(KIND_ORDER)
    live = {obj.key: obj for obj in inventory.read_all(host.conn)}
    half_made = leftovers.left_by_dead_run(host.uri, RUN_KEY) or {}
    steps = []
    for obj in sorted(archive.objects, key=lambda o: KIND_ORDER.index(o.kind)):
        if obj.kind not in kinds:
            continue
        current = live.get(obj.key)
        if current is not None and half_made == _making(obj) and inventory.definition(current) == inventory.definition(obj):
            steps.append(RestoreStep("finish", obj, "left half-made by a restore that did not finish"))
        else:
            steps.append(_step_for(host.conn, obj, current, replace))
        if steps[-1].action == "replace" and (guests := _guests_cut_off(host, obj)):
            replug = "; with it their NICs are re-plugged" if obj.kind == "network" else ""
            steps[-1].reason += f"; replacing it stops it under running guests {', '.join(guests)} (needs force{replug})"
    return steps


def _guests_cut_off(host: Host, obj: HostObject) -> list[str]:
    """The running guests that replacing a network or pool (stopping it) takes it away from."""
    if obj.kind == "network" and host.conn.networkLookupByName(obj.name).isActive():
        return sorted({dom for dom, _mac, _model in host.networks.running_nics(obj.name)})
    if obj.kind == "pool":
        pool = host.conn.storagePoolLookupByName(obj.name)
        return host.pools.running_users(obj.name, pool) if pool.isActive() else []
    return []


def _making(obj: HostObject) -> dict:
    """What the record says while `obj` is being made: its key and a digest of its definition."""
    return {"key": obj.key, "definition": hashlib.sha256(inventory.definition(obj).encode()).hexdigest()}


def _step_for(conn: libvirt.virConnect, obj: HostObject, current: HostObject | None, replace: bool) -> RestoreStep:
    if current is None:
        if obj.kind != "volume" and inventory.exists(conn, obj.kind, obj.name):
            current = HostObject(obj.kind, obj.name, "", None)  # transient object of that name
        else:
            return RestoreStep("create", obj)
    if obj.kind == "volume":
        return RestoreStep("skip", obj, "exists; volumes are never replaced")
    if current.xml and inventory.comparable(current) == inventory.comparable(obj):
        return RestoreStep("skip", obj, "identical")
    if replace:
        return RestoreStep("replace", obj, "differs from the backup")
    return RestoreStep("refuse", obj, f"exists and differs from the backup (use {term('replace', True)})")


def restore(host: Host, archive: Archive, steps: list[RestoreStep], force: bool = False) -> RestoreResult:
    """Carry out the plan in dependency order. Refusals stop everything before any change;
    a failure midway stops and reports what was done and what remains (re-running converges).
    Replacing a network or pool restarts it: refused while running guests use it, unless force
    (and then the guests' NICs on a replaced network are re-plugged into its new bridge)."""
    refused = [s for s in steps if s.action == "refuse"]
    if refused:
        names = ", ".join(s.obj.key for s in refused)
        raise VirtopsError(f"restore refused, nothing changed: {names} already exist and differ from the backup; "
                           f"use {term('replace', True)} to overwrite them, or {term('only')} to restore other kinds.")
    for step in steps:
        if step.action == "replace":
            _refuse_cutting_off(host, step.obj, force)
    result = RestoreResult()
    todo = [s for s in steps if s.action in ("create", "replace", "finish")]
    for index, step in enumerate(todo):
        if _came_with_its_pool(host, step):
            continue
        leftovers.note(host.uri, RUN_KEY, _making(step.obj))
        try:
            if step.action == "replace":
                inventory.undefine(host.conn, step.obj.kind, step.obj.name)
            inventory.define(host.conn, step.obj, finish=step.action == "finish")
            if step.obj.kind == "volume" and archive.data_for(step.obj.name):
                _restore_volume_data(host, archive, step.obj.name)
            if step.obj.kind == "network" and step.obj.active:
                host.networks.replug_running_guests(step.obj.name)  # a replaced network's guests, as net edit does
        except (libvirt.libvirtError, VirtopsError) as err:
            reason = one_sentence(err.get_error_message()) if isinstance(err, libvirt.libvirtError) else str(err)
            result.failed = f"{step.obj.key}: {reason}"
            result.remaining = [s.obj.key for s in todo[index:]]
            return result  # the record stays: the next restore finishes this object
        leftovers.forget(host.uri, RUN_KEY)
        result.done.append(step.obj.key)
    return result


def _came_with_its_pool(host: Host, step: RestoreStep) -> bool:
    """A volume planned before its pool existed may come with the pool once it starts: a disk pool's
    partitions, a logical pool's LVs, the files already in a directory. Then it is skipped as any
    volume that exists is (never replaced), and the step says so."""
    if step.action != "create" or step.obj.kind != "volume" or not inventory.exists(host.conn, "volume", step.obj.name):
        return False
    step.action, step.reason = "skip", "exists: it came with its pool"
    return True


def _refuse_cutting_off(host: Host, obj: HostObject, force: bool) -> None:
    if obj.kind == "network":
        host.networks.refuse_cutting_off(obj.name, "replacing it with the backup's restarts it and", force,
                                         "virtops then re-plugs their NICs")
    elif obj.kind == "pool":
        host.pools.refuse_stopping_under_guests(obj.name, "replacing it with the backup's stops it under them and", force)


def _restore_volume_data(host: Host, archive: Archive, ref: str) -> None:
    data = archive.data_for(ref)
    extents = json.loads((archive.root / data["extents"]).read_text())
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-data-") as scratch:
        image = Path(scratch) / "volume.img"
        unpack_extents(extents, archive.root / data["data"], image)
        host.volumes.upload(ref, str(image))


# -- diff -----------------------------------------------------------------------------
@dataclass
class Difference:
    key: str
    state: str  # only-in-backup | only-on-host | differs
    diff: str = ""


def diff(host: Host, archive: Archive) -> list[Difference]:
    live = {obj.key: obj for obj in inventory.read_all(host.conn)}
    saved = {obj.key: obj for obj in archive.objects}
    result = []
    for key in sorted(saved.keys() | live.keys(), key=_kind_then_name):
        if key not in live:
            result.append(Difference(key, "only-in-backup"))
        elif key not in saved:
            result.append(Difference(key, "only-on-host"))
        else:
            before, after = inventory.comparable(saved[key]), inventory.comparable(live[key])
            if before != after:
                lines = difflib.unified_diff(before.splitlines(), after.splitlines(), "backup", "host", lineterm="", n=1)
                result.append(Difference(key, "differs", "\n".join(lines)))
    return result


def _kind_then_name(key: str) -> tuple[int, str]:
    kind, name = key.split("/", 1)
    return KIND_ORDER.index(kind), name
