"""Reading libvirt's XML where nothing is written back: the listings and info commands, and the
checks that only look. The standard library's ElementTree (C-accelerated) parses it; the declared
fields (fields.py) read its elements as they read lxml's, so a listing never imports lxml, which
costs it about 10 ms of start-up here, half of what virsh takes for the whole listing.

What ElementTree refuses goes to doc.parse, whose recovering parser keeps what libvirt 9.0's
unescaped `<` in a value leaves readable (see there); its lxml element reads the same."""
from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from xml.etree.ElementTree import Element


def parse(text: str) -> Element:
    """XML that libvirt gave us, to read only: an ElementTree element, or lxml's for XML that is
    not well-formed (doc.parse, which raises doc.UnreadableXML when even recovery finds nothing)."""
    # Imported on the first parse, not with this module: `vm list` of stopped VMs and `host info`
    # read no XML, and ElementTree costs them 3 ms of start-up.
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError:
        from virtops.xmlmodels import doc  # lxml, for the rare document only its recovery reads

        return doc.parse(text)


def element(tag: str) -> Element:
    """An empty element to read as a document that says nothing (an unreadable volume's)."""
    from xml.etree.ElementTree import Element

    return Element(tag)
