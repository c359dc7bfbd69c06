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
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from virtops.backup import inventory
from virtops.base.errors import VirtopsError, libvirt_errors, one_sentence
from virtops.daemon.facts import version_string
from virtops.host import Host
from virtops.backup.inventory import KIND_ORDER, HostObject

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
        return next((d for d in self.manifest.get("data", []) if d["volume"] == volume), None)


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
def read_backup(source: Path) -> Archive:
    """Load and verify an archive completely before anything may change: manifest, every file
    present, every checksum right, every XML parses."""
    unpacked = None
    root = source
    if not source.is_dir():
        unpacked = tempfile.TemporaryDirectory(prefix="virtops-restore-")
        root = Path(unpacked.name)
        _unpack(source, root)
    manifest_file = root / "manifest.json"
    if not manifest_file.is_file():
        raise VirtopsError(f"backup {source}: no manifest.json; this is not a virtops backup.")
    try:
        manifest = json.loads(manifest_file.read_text())
        entries = manifest["objects"]
    except (ValueError, KeyError, TypeError) as err:
        raise VirtopsError(f"backup {source}: manifest.json is damaged ({err}).") from err
    objects = [_verified_object(source, root, entry) for entry in entries]
    for data in manifest.get("data", []):
        _verify_file(source, root, data["extents"], data["extents_sha256"])
        _verify_file(source, root, data["data"], data["data_sha256"])
    return Archive(manifest, objects, root, unpacked)


def _verify_file(source: Path, root: Path, name: str, sha256: str) -> Path:
    path = root / name
    if not path.is_file() or root.resolve() not in path.resolve().parents:
        raise VirtopsError(f"backup {source}: {name} is listed in the manifest but missing; the archive is incomplete.")
    if _sha256_file(path) != sha256:
        raise VirtopsError(f"backup {source}: {name} does not match its checksum; the archive is corrupt or was altered.")
    return path


def _verified_object(source: Path, root: Path, entry: dict) -> HostObject:
    name = entry.get("file", "")
    data = _verify_file(source, root, name, entry.get("sha256", "")).read_text()
    try:
        from virtops.xmlmodels import doc as X

        X.parse(data)
    except Exception as err:  # lxml raises several error types for broken XML
        raise VirtopsError(f"backup {source}: {name} is not valid XML ({err}).") from err
    if entry.get("kind") not in KIND_ORDER:
        raise VirtopsError(f"backup {source}: {name} has unknown kind {entry.get('kind')!r}.")
    return HostObject(entry["kind"], entry["name"], data, entry.get("uuid"),
                      bool(entry.get("autostart")), bool(entry.get("active")))


def _unpack(source: Path, root: Path) -> None:
    try:
        with tarfile.open(source, "r:*") as tar:
            tar.extractall(root, filter="data")  # the data filter refuses absolute paths, links out, devices
    except (tarfile.TarError, OSError, EOFError) as err:
        raise VirtopsError(f"backup {source}: is neither a readable .tar.gz archive nor a backup directory.") from err


# -- restore --------------------------------------------------------------------------
def plan_restore(host: Host, archive: Archive, only: list[str] | None = None, replace: bool = False) -> list[RestoreStep]:
    kinds = {KIND_OF_OPTION[o] for o in only} if only else set(KIND_ORDER)
    live = {obj.key: obj for obj in inventory.read_all(host.conn)}
    steps = []
    for obj in sorted(archive.objects, key=lambda o: KIND_ORDER.index(o.kind)):
        if obj.kind not in kinds:
            continue
        steps.append(_step_for(host.conn, obj, live.get(obj.key), replace))
    return steps


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
    return RestoreStep("refuse", obj, "exists and differs from the backup (use --replace)")


def restore(host: Host, archive: Archive, steps: list[RestoreStep]) -> RestoreResult:
    """Carry out the plan in dependency order. Refusals stop everything before any change;
    a failure midway stops and reports what was done and what remains (re-running converges)."""
    refused = [s for s in steps if s.action == "refuse"]
    if refused:
        names = ", ".join(s.obj.key for s in refused)
        raise VirtopsError(f"restore refused, nothing changed: {names} already exist and differ from the backup; "
                           f"use --replace to overwrite them, or --only to restore other kinds.")
    result = RestoreResult()
    todo = [s for s in steps if s.action in ("create", "replace")]
    for index, step in enumerate(todo):
        try:
            if step.action == "replace":
                inventory.undefine(host.conn, step.obj.kind, step.obj.name)
            inventory.define(host.conn, step.obj)
            if step.obj.kind == "volume" and archive.data_for(step.obj.name):
                _restore_volume_data(host, archive, step.obj.name)
        except (libvirt.libvirtError, VirtopsError) as err:
            reason = one_sentence(err.get_error_message()) if isinstance(err, libvirt.libvirtError) else str(err)
            result.failed = f"{step.obj.key}: {reason}"
            result.remaining = [s.obj.key for s in todo[index:]]
            return result
        result.done.append(step.obj.key)
    return result


def _restore_volume_data(host: Host, archive: Archive, ref: str) -> None:
    data = archive.data_for(ref)
    extents = json.loads((archive.root / data["extents"]).read_text())
    with tempfile.TemporaryDirectory(prefix="virtops-restore-data-") as scratch:
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
