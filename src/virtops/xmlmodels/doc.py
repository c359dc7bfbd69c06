"""XML helpers: every document virtops emits is built with lxml and checked against libvirt's RelaxNG schemas."""
from __future__ import annotations

import functools
import threading
from pathlib import Path

from lxml import etree

from virtops.base.errors import VirtopsError

SCHEMA_DIR = Path("/usr/share/libvirt/schemas")


def element(tag: str, text: str | int | None = None, /, **attrs: str | int | None) -> etree._Element:
    """An element with attributes (None values are left out) and optional text."""
    node = etree.Element(tag, {k.rstrip("_"): str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        node.text = str(text)
    return node


def sub(parent: etree._Element, tag: str, text: str | int | None = None, /, **attrs: str | int | None) -> etree._Element:
    node = element(tag, text, **attrs)
    parent.append(node)
    return node


def to_string(node: etree._Element) -> str:
    return etree.tostring(node, pretty_print=True, encoding="unicode")


class UnreadableXML(VirtopsError):
    """XML from the daemon that even a recovering parser makes nothing of."""


_parsers = threading.local()  # lxml parsers are not thread-safe; building one per call costs more than parsing


def _parser(recover: bool) -> etree.XMLParser:
    key = "recovering" if recover else "strict"
    parser = getattr(_parsers, key, None)
    if parser is None:
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, recover=recover)
        setattr(_parsers, key, parser)
    return parser


def parse(text: str) -> etree._Element:
    """XML that libvirt gave us. It is not always well-formed: libvirt 9.0 writes a network's
    `<domain name='a<b'/>` back with the `<` unescaped, say, and one such object must not break a
    listing, an export or a backup. So what a strict parse refuses is read again by libxml2's
    recovering parser (the damage is in the values, which it keeps); UnreadableXML only when that
    gives nothing either. Never for what users hand in: parse_strict."""
    data = text.encode()
    try:
        return etree.fromstring(data, _parser(recover=False))
    except etree.XMLSyntaxError as err:
        strict_error = err
    root = etree.fromstring(data, _parser(recover=True)) if data.strip() else None
    if root is None:
        raise UnreadableXML(f"libvirt returned XML that cannot be read ({strict_error.msg})")
    return root


def parse_strict(text: str) -> etree._Element:
    """XML a user hands in (a file, an archive's member): well-formed or etree.XMLSyntaxError."""
    return etree.fromstring(text.encode(), _parser(recover=False))


@functools.cache
def _schema(name: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA_DIR / f"{name}.rng")))


def validate(node: etree._Element, schema: str) -> None:
    """Raise ValueError naming the first schema violation; schema is e.g. 'domain', 'network', 'storagepool'."""
    rng = _schema(schema)
    if not rng.validate(node):
        raise ValueError(f"generated {schema} XML does not match libvirt's schema: {rng.error_log.last_error}")
