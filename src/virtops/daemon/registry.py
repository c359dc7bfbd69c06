"""The host registry: named libvirt URIs with tags, so that `-c NAME` and `-H SELECTOR` name hosts.

Kept as YAML in the user's file ($VIRTOPS_HOSTS, else ~/.config/virtops/hosts.yaml); the system's
file (/etc/virtops/hosts.yaml) is read below it: a name in both means the user's entry. Only the
user's file is written, atomically (a temporary file renamed over it) and under an flock on a lock
file beside it, so that two `host add` at once both land. Running lab hosts are hosts too, as
`lab:NAME`, without being added (fleet/select.py adds them: this module imports no lab).

    hosts:
      web1:
        uri: qemu+ssh://root@web1.example.org/system
        tags: [web, prod]
"""
from __future__ import annotations

import fcntl
import functools
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Iterator

from virtops.base.errors import InvalidInput, NotFound, VirtopsError
from virtops.base.names import LAB_PREFIX, check_lab_term

SYSTEM_FILE = Path("/etc/virtops/hosts.yaml")
MAX_FILE_BYTES = 1 << 20  # a thousand hosts take about 100 KiB
MAX_HOSTS = 10_000
MAX_TAGS = 64
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NAME_RULE = "1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
RESERVED_NAMES = {"all"}  # a selector word (-H all)
# libvirt's URIs: DRIVER[+TRANSPORT]://[USER@][HOST][:PORT]/PATH[?PARAMS]
DRIVER_PATTERN = re.compile(r"^[a-z][a-z0-9]*$")
TRANSPORTS = {"tls", "tcp", "unix", "ssh", "libssh", "libssh2", "ext"}


@dataclass(frozen=True)
class RegisteredHost:
    name: str  # as the user names it: web1, or lab:NAME for a lab host
    uri: str  # as given (a lab host's: lab:NAME, which daemon/connection.py resolves)
    tags: tuple[str, ...] = ()
    source: str = ""  # the file it is in, or "lab"

    def as_dict(self) -> dict:
        return {"name": self.name, "uri": self.uri, "tags": list(self.tags), "source": self.source}


@dataclass
class _Entries:
    """A registry file's hosts, in the file's order."""
    hosts: dict[str, RegisteredHost] = field(default_factory=dict)


# -- where -----------------------------------------------------------------------------------
def user_file() -> Path:
    given = os.environ.get("VIRTOPS_HOSTS")
    return Path(given) if given else Path.home() / ".config" / "virtops" / "hosts.yaml"


def system_file() -> Path:
    """Below the user's file. $VIRTOPS_SYSTEM_HOSTS moves it (tests; an empty value: none)."""
    given = os.environ.get("VIRTOPS_SYSTEM_HOSTS")
    return SYSTEM_FILE if given is None else Path(given) if given else Path("/nonexistent/virtops-hosts.yaml")


# -- the rules of names, tags and URIs --------------------------------------------------------
def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidInput("NAME", f"{name!r} is not accepted as a host name; use {NAME_RULE}.")
    if name in RESERVED_NAMES:
        raise InvalidInput("NAME", f"{name!r} selects every host (-H all); choose another host name.")
    return name


def check_tag(tag: str) -> str:
    if not NAME_PATTERN.match(tag):
        raise InvalidInput("TAG", f"{tag!r} is not accepted as a tag; use {NAME_RULE}.")
    return tag


def check_uri(uri: str) -> str:
    """A libvirt URI (DRIVER[+TRANSPORT]://[HOST]/PATH) or lab:NAME. Syntax only: the host may be down."""
    if uri.startswith(LAB_PREFIX):
        return check_lab_term(uri, "URI")
    expected = "a libvirt URI such as qemu:///system, qemu+ssh://root@host/system or qemu+tls://host/system"
    if len(uri) > 2048 or any(ch.isspace() or ord(ch) < 32 for ch in uri) or "://" not in uri:
        raise InvalidInput("URI", f"{uri!r} is not {expected}.")
    scheme = uri.split("://", 1)[0]
    driver, _, transport = scheme.partition("+")
    if not DRIVER_PATTERN.match(driver) or (transport and transport not in TRANSPORTS):
        raise InvalidInput("URI", f"{uri!r}: {scheme!r} is not a libvirt scheme; expected {expected} "
                                  f"(transports: {', '.join(sorted(TRANSPORTS))}).")
    from urllib.parse import urlsplit  # imported here: -H and -c NAME only read the registry

    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise InvalidInput("URI", f"{uri!r} is not {expected} ({err}).") from None
    if not parts.path.startswith("/"):
        raise InvalidInput("URI", f"{uri!r} has no path; expected {expected}.")
    return uri


# -- reading ---------------------------------------------------------------------------------
def registered() -> list[RegisteredHost]:
    """Every host of the user's and the system's files; the user's entry wins a name in both."""
    merged = dict(_read(system_file()).hosts)
    merged.update(_read(user_file()).hosts)
    return list(merged.values())


def lookup(name: str, known: list[RegisteredHost] | None = None) -> RegisteredHost:
    """The registered host NAME (among `known`, when the files were read already)."""
    for host in registered() if known is None else known:
        if host.name == name:
            return host
    raise NotFound(f"host {name!r} is not in the registry ({user_file()}); `virtops host list` shows the "
                   f"registered hosts, `virtops host add {name} URI` adds one.")


def _read(path: Path) -> _Entries:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return _Entries()
    except OSError as err:
        raise VirtopsError(f"{path}: cannot read the host registry ({err.strerror.lower()}).") from None
    if len(data) > MAX_FILE_BYTES:
        raise VirtopsError(f"{path}: the host registry is larger than {MAX_FILE_BYTES // 1024} KiB; it is not read.")
    return _parse(data.decode("utf-8", errors="replace"), path)


def _parse(text: str, path: Path) -> _Entries:
    """Bounded and strict: the safe loader without aliases, every entry checked by the rules above."""
    import yaml

    def refuse(where: str, what: str) -> VirtopsError:
        return VirtopsError(f"{path}: {where}: {what}; fix the file or remove the entry.")

    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - _loader() is the safe loader, without aliases
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "the file"
        raise refuse(line, f"not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        return _Entries()
    if not isinstance(data, dict) or set(data) - {"hosts"}:
        raise refuse("the top", "the file must be a mapping with one key, hosts")
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise refuse("hosts", "must be a mapping of host names to {uri, tags}")
    if len(hosts) > MAX_HOSTS:
        raise refuse("hosts", f"more than {MAX_HOSTS} hosts")
    entries = _Entries()
    for name, entry in hosts.items():
        where = f"hosts.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str) or set(entry) - {"uri", "tags"}:
            raise refuse(where, "must be a mapping with uri (text) and optional tags (a list)")
        tags = entry.get("tags") or []
        if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(isinstance(t, str) for t in tags):
            raise refuse(f"{where}.tags", f"must be a list of at most {MAX_TAGS} tags")
        try:
            check_name(str(name))
            check_uri(entry["uri"])
            for tag in tags:
                check_tag(tag)
        except InvalidInput as err:
            raise refuse(where, err.message.split(": ", 1)[1].rstrip(".")) from None
        entries.hosts[str(name)] = RegisteredHost(str(name), entry["uri"], tuple(dict.fromkeys(tags)), str(path))
    return entries


@functools.lru_cache(maxsize=1)
def _loader():
    """Built on first use: yaml is imported only by the commands that read the registry."""
    import yaml

    class Loader(yaml.SafeLoader):
        """The safe loader, refusing aliases (a few lines of them expand to gigabytes) and keys given twice."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted here",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"{key_node.value!r} is given twice",
                                                            key_node.start_mark)
                if isinstance(key, Hashable):
                    seen.add(key)
            return super().construct_mapping(node, deep)

    return Loader


# -- writing ---------------------------------------------------------------------------------
def add(name: str, uri: str, tags: list[str] | tuple[str, ...] = ()) -> RegisteredHost:
    check_name(name)
    check_uri(uri)
    for tag in tags:
        check_tag(tag)

    def change(entries: _Entries) -> RegisteredHost:
        if name in entries.hosts:
            raise InvalidInput("NAME", f"host {name!r} is already registered (as {entries.hosts[name].uri}); "
                                       f"remove it first or choose another name.")
        system = _read(system_file()).hosts.get(name)
        if system is not None:
            raise InvalidInput("NAME", f"host {name!r} is already registered in {system.source} "
                                       f"(as {system.uri}); choose another name.")
        entries.hosts[name] = RegisteredHost(name, uri, tuple(dict.fromkeys(tags)), str(user_file()))
        return entries.hosts[name]

    return _change(change)


def remove(name: str) -> RegisteredHost:
    def change(entries: _Entries) -> RegisteredHost:
        return entries.hosts.pop(_own(entries, name))

    return _change(change)


def tag(name: str, tags: list[str] | tuple[str, ...], untag: bool = False) -> RegisteredHost:
    """Add the tags to a host (or take them away with untag)."""
    for one in tags:
        check_tag(one)

    def change(entries: _Entries) -> RegisteredHost:
        host = entries.hosts[_own(entries, name)]
        kept = [t for t in host.tags if t not in tags] if untag else list(dict.fromkeys([*host.tags, *tags]))
        entries.hosts[name] = RegisteredHost(name, host.uri, tuple(kept), host.source)
        return entries.hosts[name]

    return _change(change)


def _own(entries: _Entries, name: str) -> str:
    """A name in the user's file; one only in the system's file is not ours to change."""
    if name in entries.hosts:
        return name
    system = _read(system_file()).hosts.get(name)
    if system is not None:
        raise InvalidInput("NAME", f"host {name!r} is registered in {system.source}, not in {user_file()}; "
                                   f"change it there (as its owner).")
    raise NotFound(f"host {name!r} is not in the registry ({user_file()}); `virtops host list` shows the registered hosts.")


def _change(change: Callable[[_Entries], RegisteredHost]) -> RegisteredHost:
    """Read, change and write the user's file while holding its lock: a refusal leaves it as it was."""
    path = user_file()
    with _locked(path):
        entries = _read(path)
        result = change(entries)
        _write(path, entries)
    return result


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An flock on PATH.lock, not on the file itself: the file is replaced by a rename, the lock file never."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a")
    except OSError as err:
        raise VirtopsError(f"{path}: cannot write the host registry ({err.strerror.lower()}).") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, entries: _Entries) -> None:
    import tempfile

    text = dump(entries.hosts.values())
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def dump(hosts) -> str:
    import yaml

    data = {"hosts": {h.name: ({"uri": h.uri, "tags": list(h.tags)} if h.tags else {"uri": h.uri}) for h in hosts}}
    header = "# virtops host registry: `virtops host add/remove/tag` keep it; -c NAME and -H SELECTOR use it.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
