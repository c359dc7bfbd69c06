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
import contextlib
from contextlib import contextmanager
from collections import namedtuple
from collections.abc import Hashable

TYPE_CHECKING = False  # not typing's: importing typing costs -c NAME's listing its start-up
if TYPE_CHECKING:
    from typing import Callable, Iterator

from virtops.base.errors import InvalidInput, NotFound, VirtopsError, by_face, command
from virtops.base.names import LAB_PREFIX, check_lab_term

SYSTEM_FILE = "/etc/virtops/hosts.yaml"
MAX_FILE_BYTES = 1 << 20  # a thousand hosts take about 100 KiB
MAX_HOSTS = 10_000
MAX_TAGS = 64
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NAME_RULE = "1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
RESERVED_NAMES = {"all"}  # a selector word (-H all)
# libvirt's URIs: DRIVER[+TRANSPORT]://[USER@][HOST][:PORT]/PATH[?PARAMS]
DRIVER_PATTERN = re.compile(r"^[a-z][a-z0-9]*$")
TRANSPORTS = {"tls", "tcp", "unix", "ssh", "libssh", "libssh2", "ext"}


class RegisteredHost(namedtuple("RegisteredHost", "name uri tags source", defaults=((), ""))):
    """A host of the registry: its name as the user names it (web1, or lab:NAME for a lab host),
    its URI as given (a lab host's: lab:NAME, which daemon/connection.py resolves), its tags, the
    file it is in (or "lab"). A plain tuple, neither a dataclass nor typing's NamedTuple: -c NAME
    and -H read the registry before a listing, and those imports would cost them more than the file."""

    __slots__ = ()

    def as_dict(self) -> dict:
        return {"name": self.name, "uri": self.uri, "tags": list(self.tags), "source": self.source}


Entries = dict  # of name: RegisteredHost, a registry file's hosts in the file's order


# -- where (plain strings: pathlib is not worth its import to a listing) -----------------------
def user_file() -> str:
    given = os.environ.get("VIRTOPS_HOSTS")
    return given if given else os.path.join(os.path.expanduser("~"), ".config", "virtops", "hosts.yaml")


def system_file() -> str:
    """Below the user's file. $VIRTOPS_SYSTEM_HOSTS moves it (tests; an empty value: none)."""
    given = os.environ.get("VIRTOPS_SYSTEM_HOSTS")
    return SYSTEM_FILE if given is None else given if given else "/nonexistent/virtops-hosts.yaml"


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
    merged = dict(_read(system_file()))
    merged.update(_read(user_file()))
    return list(merged.values())


def lookup(name: str, known: list[RegisteredHost] | None = None) -> RegisteredHost:
    """The registered host NAME (among `known`, when the files were read already)."""
    for host in registered() if known is None else known:
        if host.name == name:
            return host
    hint = by_face(f"; `virtops host list` shows the registered hosts, `virtops host add {name} URI` adds one")
    raise NotFound(f"host {name!r} is not in the registry ({user_file()}){hint}.")


def _read(path: str) -> Entries:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise VirtopsError(f"{path}: cannot read the host registry ({err.strerror.lower()}).") from None
    if len(data) > MAX_FILE_BYTES:
        raise VirtopsError(f"{path}: the host registry is larger than {MAX_FILE_BYTES // 1024} KiB; it is not read.")
    text = data.decode("utf-8", errors="replace")
    cached = _cached(path, text)
    if cached is not None:
        return cached
    entries = _parse(text, path)
    _remember(path, text, entries)
    return entries


# -- the parsed files, kept: importing yaml costs -c NAME and -H more than the rest of the registry.
# The cache holds each file's whole text beside its checked entries, so it answers only for the very
# same text (an edit by hand is seen at once); it lives beside the user's file, and a cache that
# cannot be read or written is only slower.
CACHE_FORMAT = 1


def _cache_file() -> str:
    return user_file() + ".parsed.json"


def _cache() -> dict:
    import json

    try:
        with open(_cache_file(), encoding="utf-8") as handle:
            cache = json.load(handle)
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) and cache.get("format") == CACHE_FORMAT else {}


def _cached(path: str, text: str) -> Entries | None:
    kept = _cache().get("files", {}).get(path)
    if not isinstance(kept, dict) or kept.get("text") != text:
        return None
    try:
        return {host[0]: RegisteredHost(host[0], host[1], tuple(host[2]), path) for host in kept["hosts"]}
    except (KeyError, IndexError, TypeError):
        return None


def _remember(path: str, text: str, entries: Entries) -> None:
    import json

    cache_file = _cache_file()
    if not os.path.isdir(os.path.dirname(cache_file)):
        return  # no registry of the user's own yet: nowhere of ours to keep it
    cache = _cache()
    files = cache.get("files") if isinstance(cache.get("files"), dict) else {}
    files[path] = {"text": text, "hosts": [[h.name, h.uri, list(h.tags)] for h in entries.values()]}
    try:
        _replace(cache_file, json.dumps({"format": CACHE_FORMAT, "files": files}), 0o600)
    except OSError:
        pass


def _parse(text: str, path: str) -> Entries:
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
        return {}
    if not isinstance(data, dict) or set(data) - {"hosts"}:
        raise refuse("the top", "the file must be a mapping with one key, hosts")
    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise refuse("hosts", "must be a mapping of host names to {uri, tags}")
    if len(hosts) > MAX_HOSTS:
        raise refuse("hosts", f"more than {MAX_HOSTS} hosts")
    entries: Entries = {}
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
        entries[str(name)] = RegisteredHost(str(name), entry["uri"], tuple(dict.fromkeys(tags)), path)
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

    def change(entries: Entries) -> RegisteredHost:
        if name in entries:
            raise InvalidInput("NAME", f"host {name!r} is already registered (as {entries[name].uri}); "
                                       f"remove it first or choose another name.")
        system = _read(system_file()).get(name)
        if system is not None:
            raise InvalidInput("NAME", f"host {name!r} is already registered in {system.source} "
                                       f"(as {system.uri}); choose another name.")
        entries[name] = RegisteredHost(name, uri, tuple(dict.fromkeys(tags)), user_file())
        return entries[name]

    return _change(change)


def remove(name: str) -> RegisteredHost:
    def change(entries: Entries) -> RegisteredHost:
        return entries.pop(_own(entries, name))

    return _change(change)


def tag(name: str, tags: list[str] | tuple[str, ...], untag: bool = False) -> RegisteredHost:
    """Add the tags to a host (or take them away with untag)."""
    for one in tags:
        check_tag(one)

    def change(entries: Entries) -> RegisteredHost:
        host = entries[_own(entries, name)]
        kept = [t for t in host.tags if t not in tags] if untag else list(dict.fromkeys([*host.tags, *tags]))
        entries[name] = RegisteredHost(name, host.uri, tuple(kept), host.source)
        return entries[name]

    return _change(change)


def _own(entries: Entries, name: str) -> str:
    """A name in the user's file; one only in the system's file is not ours to change."""
    if name in entries:
        return name
    system = _read(system_file()).get(name)
    if system is not None:
        raise InvalidInput("NAME", f"host {name!r} is registered in {system.source}, not in {user_file()}; "
                                   f"change it there (as its owner).")
    raise NotFound(f"host {name!r} is not in the registry ({user_file()})"
                   f"{command('host list', wrap='; {} shows the registered hosts', elsewhere='')}.")


def _change(change: Callable[[Entries], RegisteredHost]) -> RegisteredHost:
    """Read, change and write the user's file while holding its lock: a refusal leaves it as it was."""
    path = user_file()
    with _locked(path):
        entries = _read(path)
        result = change(entries)
        _write(path, entries)
    return result


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """An flock on PATH.lock, not on the file itself: the file is replaced by a rename, the lock file never."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handle = open(path + ".lock", "a")
    except OSError as err:
        raise VirtopsError(f"{path}: cannot write the host registry ({err.strerror.lower()}).") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: str, entries: Entries) -> None:
    text = dump(entries.values())
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o600
    _replace(path, text, mode)
    _remember(path, text, entries)


def _replace(path: str, text: str, mode: int) -> None:
    """Write PATH whole or not at all: a temporary file beside it, synced, renamed over it."""
    import tempfile

    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)  # the rename itself survives a crash
    finally:
        os.close(handle)


def dump(hosts) -> str:
    import yaml

    data = {"hosts": {h.name: ({"uri": h.uri, "tags": list(h.tags)} if h.tags else {"uri": h.uri}) for h in hosts}}
    header = "# virtops host registry: `virtops host add/remove/tag` keep it; -c NAME and -H SELECTOR use it.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
