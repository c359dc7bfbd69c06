"""XML helpers: every document virtops emits is built with lxml and checked against libvirt's RelaxNG schemas."""
from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

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


def parse(text: str) -> etree._Element:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    return etree.fromstring(text.encode(), parser)


@functools.cache
def _schema(name: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA_DIR / f"{name}.rng")))


def validate(node: etree._Element, schema: str) -> None:
    """Raise ValueError naming the first schema violation; schema is e.g. 'domain', 'network', 'storagepool'."""
    rng = _schema(schema)
    if not rng.validate(node):
        raise ValueError(f"generated {schema} XML does not match libvirt's schema: {rng.error_log.last_error}")
