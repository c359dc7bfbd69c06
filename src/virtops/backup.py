"""Whole-host backup: every pool, volume (metadata), network and domain, with a manifest of
checksums; restore in dependency order that converges when re-run; diff against the live host.

An archive (a .tar.gz or a directory) holds:
    manifest.json            host, libvirt version, time, and per object: file, sha256, flags
    pool/NAME.xml            exactly what libvirt gives, so `virsh pool-define` takes it
    volume/POOL/VOL.xml      the volume's XML (name, format, capacity, allocation, backing)
    network/NAME.xml         `virsh net-define` takes it
    domain/NAME.xml          `virsh define` takes it (inactive XML)
"""
from __future__ import annotations

import difflib
import hashlib
import io
import json
import socket
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from . import inventory
from .errors import VirtopsError, libvirt_errors
from .host import Host, version_string
from .inventory import KIND_ORDER, HostObject

FORMAT_VERSION = 1
KINDS = ("pools", "volumes", "networks", "vms")
KIND_OF_OPTION = {"pools": "pool", "volumes": "volume", "networks": "network", "vms": "domain"}


@dataclass
class Archive:
    manifest: dict
    objects: list[HostObject]


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
def create_backup(host: Host, output: Path) -> Archive:
    """Write the host's configuration to `output`: a directory, or a .tar.gz file."""
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
    files: dict[str, bytes] = {}
    for obj in objects:
        path = f"{obj.kind}/{obj.name}.xml"
        data = obj.xml.encode()
        files[path] = data
        manifest["objects"].append({"kind": obj.kind, "name": obj.name, "file": path,
                                    "sha256": hashlib.sha256(data).hexdigest(), "uuid": obj.uuid,
                                    "autostart": obj.autostart, "active": obj.active})
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    _write(output, files)
    return Archive(manifest, objects)


def default_output_name(host: Host) -> Path:
    return Path(f"virtops-backup-{host.conn.getHostname()}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")


def _write(output: Path, files: dict[str, bytes]) -> None:
    if output.suffixes[-2:] == [".tar", ".gz"] or output.suffix == ".tgz":
        tmp = output.with_name(output.name + ".partial")
        with tarfile.open(tmp, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
        tmp.rename(output)
        return
    if output.exists() and any(output.iterdir()):
        raise VirtopsError(f"output: directory {output} is not empty; give an empty or new directory, or a FILE.tar.gz.")
    for name, data in files.items():
        target = output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# -- read and verify ------------------------------------------------------------------
def read_backup(source: Path) -> Archive:
    """Load and verify an archive completely before anything may change: manifest, every file
    present, every checksum right, every XML parses."""
    files = _read_files(source)
    if "manifest.json" not in files:
        raise VirtopsError(f"backup {source}: no manifest.json; this is not a virtops backup.")
    try:
        manifest = json.loads(files["manifest.json"])
        entries = manifest["objects"]
    except (ValueError, KeyError, TypeError) as err:
        raise VirtopsError(f"backup {source}: manifest.json is damaged ({err}).") from err
    objects = [_verified_object(source, entry, files) for entry in entries]
    return Archive(manifest, objects)


def _verified_object(source: Path, entry: dict, files: dict[str, bytes]) -> HostObject:
    path = entry.get("file", "")
    if path not in files:
        raise VirtopsError(f"backup {source}: {path} is listed in the manifest but missing; the archive is incomplete.")
    data = files[path]
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise VirtopsError(f"backup {source}: {path} does not match its checksum; the archive is corrupt or was altered.")
    try:
        from . import xml as X

        X.parse(data.decode())
    except Exception as err:  # lxml raises several error types for broken XML
        raise VirtopsError(f"backup {source}: {path} is not valid XML ({err}).") from err
    if entry.get("kind") not in KIND_ORDER:
        raise VirtopsError(f"backup {source}: {path} has unknown kind {entry.get('kind')!r}.")
    return HostObject(entry["kind"], entry["name"], data.decode(), entry.get("uuid"),
                      bool(entry.get("autostart")), bool(entry.get("active")))


def _read_files(source: Path) -> dict[str, bytes]:
    if source.is_dir():
        return {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    try:
        with tarfile.open(source, "r:*") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
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
        except libvirt.libvirtError as err:
            from .errors import one_sentence

            result.failed = f"{step.obj.key}: {one_sentence(err.get_error_message())}"
            result.remaining = [s.obj.key for s in todo[index:]]
            return result
        result.done.append(step.obj.key)
    return result


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
