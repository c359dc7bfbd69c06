"""The spec's `xml:` escape hatch: an object whose form the spec's fields cannot describe (a pool of
type iscsi, a network in mode hostdev, ...) is carried as libvirt's own XML, so a spec can hold any
host. Two such texts are compared after libvirt's own normalisation: each is defined on libvirt's
test driver (test:///default, in this process's memory: no host is touched) and formatted again,
so quoting, attribute order, defaults libvirt fills in and the spec's YAML layout never count as a
change. What only the host gives an object (its UUID, a network's MAC, a pool's usage figures)
counts only when the spec's XML gives it too.

Networks, pools and volumes use it here; domains may (the kinds are declared in KINDS)."""
from __future__ import annotations

import threading
import uuid as uuid_module
from dataclasses import dataclass
from typing import Callable

import libvirt
from lxml import etree

from virtops.base.errors import InvalidInput
from virtops.xmlmodels import doc as X

TEST_URI = "test:///default"
RAW_POOL = "virtops-rawxml-volumes"  # the test driver's pool the volumes are formatted in


@dataclass(frozen=True)
class Kind:
    root: str          # the document's root element
    schema: str        # libvirt's RelaxNG schema (xmlmodels.doc.validate)
    define: Callable[[libvirt.virConnect, str], object]
    undefine: Callable[[object], None]
    host_given: tuple[str, ...]  # elements the host fills in by itself: compared only when given
    state: tuple[str, ...] = ()  # elements that are where and how full it is, never configuration


def _define_volume(conn: libvirt.virConnect, text: str):
    return _volume_pool(conn).createXML(text, 0)


KINDS = {
    "network": Kind("network", "network", lambda c, t: c.networkDefineXML(t), lambda o: o.undefine(),
                    ("uuid", "mac")),
    "pool": Kind("pool", "storagepool", lambda c, t: c.storagePoolDefineXML(t, 0), lambda o: o.undefine(),
                 ("uuid", "capacity", "allocation", "available")),
    "volume": Kind("volume", "storagevol", _define_volume, lambda o: o.delete(0), ("target/permissions",),
                   ("key", "allocation", "physical", "target/path", "target/timestamps")),
    "domain": Kind("domain", "domain", lambda c, t: c.defineXML(t), lambda o: o.undefine(), ("uuid",)),
}

_lock = threading.Lock()
_conn: libvirt.virConnect | None = None


def _test_conn() -> libvirt.virConnect:
    global _conn
    if _conn is None:
        _conn = libvirt.open(TEST_URI)
    return _conn


def _volume_pool(conn: libvirt.virConnect) -> libvirt.virStoragePool:
    if RAW_POOL in conn.listStoragePools():
        return conn.storagePoolLookupByName(RAW_POOL)
    return conn.storagePoolCreateXML(f"<pool type='dir'><name>{RAW_POOL}</name><target><path>/{RAW_POOL}"
                                     "</path></target></pool>", 0)


def parsed(kind: str, text: str, name: str | None = None) -> etree._Element:
    """The spec's XML of one object, well-formed, of its kind, valid by libvirt's schema and (when
    the entry names it) of the entry's name; InvalidInput("xml") otherwise."""
    declared = KINDS[kind]
    try:
        node = X.parse_strict(text)
    except etree.XMLSyntaxError as err:
        raise InvalidInput("xml", f"is not well-formed XML ({str(err).rstrip('.')}); give libvirt's XML of the "
                                  f"{kind}, as `virsh {kind_command(kind)}` writes it.") from None
    if node.tag != declared.root:
        raise InvalidInput("xml", f"is a <{node.tag}> document; a {kind} is given as <{declared.root}>.")
    try:
        X.validate(node, declared.schema)
    except ValueError as err:  # the schema's own words are after its location
        raise InvalidInput("xml", f"is no {kind} libvirt accepts ({str(err).rsplit(': ', 1)[-1].rstrip('.')}); "
                                  f"compare it with what `virsh {kind_command(kind)}` writes.") from None
    given = node.findtext("name")
    if name is not None and given != name:
        raise InvalidInput("xml", f"names the {kind} {given!r}, but the entry's name is {name!r}; make them the same.")
    return node


def kind_command(kind: str) -> str:
    return {"network": "net-dumpxml", "pool": "pool-dumpxml", "volume": "vol-dumpxml"}.get(kind, "dumpxml")


def normalized(kind: str, text: str, like: str | None = None) -> str:
    """libvirt's formatting of the object's XML. `like`: the other side of a comparison; what the
    host fills in by itself is dropped from both unless both give it."""
    mine = _formatted(kind, text)
    _drop(mine, KINDS[kind].state)
    if like is None:
        return X.to_string(mine)
    theirs = X.parse(like) if isinstance(like, str) else like
    for path in KINDS[kind].host_given:
        if theirs.find(path) is None:
            for found in mine.findall(path):
                found.getparent().remove(found)
    return X.to_string(mine)


def same(kind: str, one: str, other: str) -> bool:
    """Whether two XML texts are one object as libvirt sees it."""
    first, second = _formatted(kind, one), _formatted(kind, other)
    for node in (first, second):
        _drop(node, KINDS[kind].state)
    for path in KINDS[kind].host_given:
        if first.find(path) is None or second.find(path) is None:
            for node in (first, second):
                for found in node.findall(path):
                    found.getparent().remove(found)
    return X.to_string(first) == X.to_string(second)


def _drop(node: etree._Element, paths: tuple[str, ...]) -> None:
    for path in paths:
        for found in node.findall(path):
            found.getparent().remove(found)


def _formatted(kind: str, text: str) -> etree._Element:
    """Defined under a name of its own on the test driver, formatted, and gone again."""
    declared = KINDS[kind]
    node = X.parse(text)
    name_node = node.find("name")
    name = name_node.text if name_node is not None else None
    scratch = f"virtops-rawxml-{uuid_module.uuid4().hex[:12]}"
    if name_node is not None:
        name_node.text = scratch
    uuid_node = node.find("uuid")
    if uuid_node is not None:  # the test driver holds objects with their UUIDs: no collision with its own
        node.remove(uuid_node)
    with _lock:
        made = declared.define(_test_conn(), X.to_string(node))
        try:
            formatted = X.parse(made.XMLDesc(0))
        finally:
            declared.undefine(made)
    if name_node is not None:
        formatted.find("name").text = name
    if uuid_node is not None:
        fresh = formatted.find("uuid")
        if fresh is not None:
            fresh.text = uuid_node.text
    else:
        for fresh in formatted.findall("uuid"):
            formatted.remove(fresh)
    return formatted
