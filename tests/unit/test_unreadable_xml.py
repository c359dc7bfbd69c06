"""XML from libvirt is read at one root (xmlmodels.doc.parse), leniently: what libvirt writes
malformed is recovered, what nothing can read is one unreadable row, never a broken listing.
Files users hand in stay strict. (The real case, on a lab host: tests/lab/test_foreign_xml.py.)"""
from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from virtops.xmlmodels import doc as X

MALFORMED = "<network><name>n</name><domain name='a<b>c'/></network>"


def test_libvirts_malformed_xml_is_recovered_with_its_values():
    assert X.parse(MALFORMED).find("domain").get("name") == "a<b>c"


def test_users_xml_is_parsed_strictly():
    with pytest.raises(etree.XMLSyntaxError):
        X.parse_strict(MALFORMED)


def test_nothing_to_recover_is_a_one_sentence_error():
    with pytest.raises(X.UnreadableXML, match=r"^libvirt returned XML that cannot be read \(Document is empty"):
        X.parse("")


def test_a_network_whose_xml_cannot_be_read_at_all_is_listed_as_unreadable(test_host, monkeypatch):
    """What even the recovering parse makes nothing of (here: libvirt answers with no XML at all)
    is one unreadable row with the reason; the others are listed; asking for it is one sentence."""
    from virtops.base.errors import VirtopsError

    for name, third in (("good", 91), ("broken", 92)):
        test_host.conn.networkDefineXML(X.to_string(_network(name, third)))
    real = libvirt.virNetwork.XMLDesc
    monkeypatch.setattr(libvirt.virNetwork, "XMLDesc",
                        lambda self, flags=0: "" if self.name() == "broken" else real(self, flags))
    listed = {i.name: i for i in test_host.networks.list()}
    assert listed["good"].unreadable is None and listed["good"].subnet == "10.91.0.0/24"
    assert listed["broken"].mode == "unreadable" and "cannot be read" in listed["broken"].unreadable
    with pytest.raises(VirtopsError, match="cannot be read"):
        test_host.networks.info("broken")


def _network(name: str, third: int):
    net = X.element("network")
    X.sub(net, "name", name)
    X.sub(net, "bridge", name=f"vbrt{third}")
    X.sub(net, "ip", address=f"10.{third}.0.1", netmask="255.255.255.0")
    return net
