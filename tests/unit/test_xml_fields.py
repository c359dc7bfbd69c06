"""The declarative XML binding engine (virtops.xmlmodels.fields): paths, conversions, element
order, removal, content no field declares, child lists, logic fields, tracking."""
from __future__ import annotations

import subprocess
import sys

import pytest
from lxml import etree

from virtops.xmlmodels import fields as F
from virtops.xmlmodels.fields import FLAG, INT, MAC, ONOFF, YESNO, Child, Children, Field, SizeField, XmlModel


def parse(text: str) -> etree._Element:
    return etree.fromstring(text, etree.XMLParser(remove_blank_text=True))


def text(model: XmlModel) -> str:
    return etree.tostring(model.node, encoding="unicode")


class Host(XmlModel):
    TAG = "host"
    mac = Field("@mac", MAC)
    ip = Field("@ip")


class Thing(XmlModel):
    TAG = "thing"
    ORDER = {"": ("name", "uuid", "description", "size", "opts", "items")}
    kind = Field("@kind")
    name = Field("name")
    uuid = Field("uuid")
    size = SizeField("size", default_unit="KiB", write_unit="KiB")
    count = Field("opts/@count", INT)
    fast = Field("opts/@fast", YESNO)
    power = Field("opts/@power", ONOFF)
    locked = Field("opts/locked", FLAG)
    note = Field("opts/note")
    hosts = Children(Host, "items/host", key="mac")


def test_reads_text_attributes_and_conversions():
    thing = Thing(parse("<thing kind='k'><name>n</name><size unit='MiB'>2</size>"
                        "<opts count='0x10' fast='no' power='on'><locked/><note>hi</note></opts></thing>"))
    assert thing.values("kind", "name", "uuid", "size", "count", "fast", "power", "locked", "note") == dict(
        kind="k", name="n", uuid=None, size=2 * 1024**2, count=16, fast=False, power=True, locked=True, note="hi")


@pytest.mark.parametrize("xml, size", [
    ("<size>4</size>", 4 * 1024),                 # no unit: the field's default (KiB for memory)
    ("<size unit='bytes'>4096</size>", 4096), ("<size unit='b'>7</size>", 7),
    ("<size unit='KB'>3</size>", 3000), ("<size unit='k'>3</size>", 3072), ("<size unit='G'>1</size>", 1024**3),
    ("<size unit='GB'>1</size>", 10**9), ("<size unit='TiB'>1</size>", 1024**4),
    ("<size unit='parsecs'>1</size>", None), ("<size>lots</size>", None), ("<size/>", None),
])
def test_sizes_in_libvirt_units(xml, size):
    assert Thing(parse(f"<thing>{xml}</thing>")).size == size


def test_unreadable_values_read_as_absent():
    thing = Thing(parse("<thing><opts count='many' fast='maybe'/></thing>"))
    assert (thing.count, thing.fast) == (None, None)


def test_new_elements_go_where_the_order_says():
    thing = Thing(parse("<thing><description>d</description><items/></thing>"))
    thing.size = 8192
    thing.name = "n"
    thing.uuid = "u"
    thing.count = 3
    assert [child.tag for child in thing.node] == ["name", "uuid", "description", "size", "opts", "items"]
    assert text(thing).startswith("<thing><name>n</name><uuid>u</uuid><description>d</description>"
                                  "<size unit=\"KiB\">8</size><opts count=\"3\"/>")


def test_order_inside_nested_elements_follows_declaration():
    thing = Thing()
    thing.note = "x"
    thing.locked = True
    assert [child.tag for child in thing.node.find("opts")] == ["locked", "note"]


def test_unknown_elements_keep_their_place_and_content():
    thing = Thing(parse("<thing><name>n</name><vendor:x xmlns:vendor='urn:v' a='1'><y/></vendor:x>"
                        "<!-- a comment --><size unit='MiB'>1</size></thing>"))
    thing.uuid = "u"
    thing.name = "m"
    assert text(thing) == ("<thing><name>m</name><uuid>u</uuid><vendor:x xmlns:vendor=\"urn:v\" a=\"1\"><y/></vendor:x>"
                           "<!-- a comment --><size unit=\"MiB\">1</size></thing>")


def test_setting_an_equal_value_keeps_the_documents_spelling():
    thing = Thing(parse("<thing><size unit='MiB'>1</size><items><host mac='52:54:00:AA:BB:CC' ip='1.1.1.1'/></items></thing>"))
    before = text(thing)
    thing.update(size=1024**2, hosts=[{"mac": "52:54:00:aa:bb:cc", "ip": "1.1.1.1"}])
    assert text(thing) == before
    thing.size = 3 * 1024**2
    assert thing.node.find("size").attrib == {"unit": "KiB"} and thing.node.findtext("size") == "3072"


def test_none_removes_and_prunes_empty_parents():
    thing = Thing(parse("<thing kind='k'><opts count='1' fast='yes'><note>n</note></opts></thing>"))
    thing.kind = None
    thing.count = None
    assert text(thing) == "<thing><opts fast=\"yes\"><note>n</note></opts></thing>"
    thing.note = None
    thing.fast = None
    assert text(thing) == "<thing/>"


def test_flags_create_and_remove_their_element():
    thing = Thing()
    thing.locked = True
    assert text(thing) == "<thing><opts><locked/></opts></thing>"
    thing.locked = False
    assert text(thing) == "<thing/>" and thing.locked is False


def test_whole_number_of_the_written_unit_is_required():
    with pytest.raises(ValueError, match="size: 1000 bytes is not a whole number of KiB"):
        Thing().size = 1000


def test_children_add_remove_and_keep_order():
    thing = Thing(parse("<thing><name>n</name><items><host mac='52:54:00:00:00:01' ip='10.0.0.1' extra='keep'/>"
                        "<other/></items></thing>"))
    added = thing.hosts.add(mac="52:54:00:00:00:02", ip="10.0.0.2")
    assert [node.tag for node in thing.node.find("items")] == ["host", "host", "other"]
    assert [h.ip for h in thing.hosts] == ["10.0.0.1", "10.0.0.2"] and added.mac == "52:54:00:00:00:02"
    thing.hosts.remove(thing.hosts[0])
    assert len(thing.hosts) == 1 and thing.node.find("items/other") is not None


def test_first_child_creates_its_parent_in_order():
    thing = Thing(parse("<thing><name>n</name><uuid>u</uuid></thing>"))
    thing.hosts.add(mac="52:54:00:00:00:01", ip="10.0.0.1")
    thing.size = 1024
    assert [child.tag for child in thing.node] == ["name", "uuid", "size", "items"]


def test_setting_children_by_key_updates_in_place_and_keeps_unmodelled_parts():
    thing = Thing(parse("<thing><items><host mac='52:54:00:00:00:01' ip='10.0.0.1' extra='keep'/>"
                        "<host mac='52:54:00:00:00:02' ip='10.0.0.2'/></items></thing>"))
    thing.hosts = [{"mac": "52:54:00:00:00:03", "ip": "10.0.0.3"}, {"mac": "52:54:00:00:00:01", "ip": "10.0.0.9"}]
    assert [(h.mac, h.ip) for h in thing.hosts] == [("52:54:00:00:00:01", "10.0.0.9"), ("52:54:00:00:00:03", "10.0.0.3")]
    assert thing.node.find("items/host").get("extra") == "keep"
    thing.hosts = []
    assert text(thing) == "<thing/>"


class Ip(XmlModel):
    TAG = "ip"
    family = Field("@family")
    address = Field("@address")


class Net(XmlModel):
    TAG = "net"

    def _mode(self):
        forward = self.node.find("forward")
        return "isolated" if forward is None else (forward.get("mode") or "nat")

    def _set_mode(self, value):
        if value == "isolated":
            Net.mode.remove(self)
            forward = self.node.find("forward")
            if forward is not None:
                self.node.remove(forward)
        else:
            self.ensure(("forward",)).set("mode", value)

    name = Field("name")
    mode = Field("forward/@mode", get=_mode, set=_set_mode)
    ipv4 = Child(Ip, "ip", where=lambda ip: ip.family != "ipv6")
    ipv6 = Child(Ip, "ip", where=lambda ip: ip.family == "ipv6", create={"family": "ipv6"})


def test_logic_fields_read_and_write_through_their_pair():
    net = Net(parse("<net><name>n</name><forward/></net>"))
    assert net.mode == "nat"
    net.mode = "nat"  # equal: the document keeps its <forward/>
    assert text(net) == "<net><name>n</name><forward/></net>"
    net.mode = "isolated"
    assert net.mode == "isolated" and text(net) == "<net><name>n</name></net>"
    net.mode = "route"
    assert text(net) == "<net><name>n</name><forward mode=\"route\"/></net>"


def test_child_picked_by_condition():
    net = Net(parse("<net><ip family='ipv6' address='fd00::1'/></net>"))
    assert net.ipv4 is None and net.ipv6.address == "fd00::1"
    net.ipv4 = {"address": "10.0.0.1"}
    net.ipv6 = {"address": "fd00::2"}
    assert text(net) == "<net><ip family=\"ipv6\" address=\"fd00::2\"/><ip address=\"10.0.0.1\"/></net>"
    net.ipv6 = None
    assert text(net) == "<net><ip address=\"10.0.0.1\"/></net>"
    net.ipv6 = {"address": "fd00::3"}
    assert net.ipv6.family == "ipv6"


def test_update_applies_in_declaration_order_and_refuses_unknown_names():
    net = Net()
    net.update(ipv4={"address": "10.0.0.1"}, name="n")
    assert [child.tag for child in net.node] == ["name", "ip"]
    with pytest.raises(AttributeError, match="has no field colour"):
        net.update(colour="red")


def test_tracking_records_fields_that_read_a_value_or_were_written():
    thing = Thing(parse("<thing><name>n</name></thing>"))
    with F.tracking() as seen:
        _ = thing.name, thing.uuid, thing.locked
        thing.count = 2
    assert seen == {Thing.name, Thing.count}
    _ = thing.uuid  # outside the block: not recorded
    assert Thing.uuid not in seen and Thing.name in F.declared()


def test_row_reader_imports_no_pydantic():
    code = ("import sys; from virtops.xmlmodels import fields; from lxml import etree;"
            "print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class Named(XmlModel):
    TAG = "net"
    domain = Field("domain/@name", drop_element=True)
    local = Field("domain/@localOnly", YESNO)
    prefix = Field("@prefix", INT, get=lambda m: int(m.node.get("prefix", "64")),
                   set=lambda m, v: m.node.set("prefix", str(v)))


def test_drop_element_removes_the_attributes_that_depend_on_it():
    named = Named(parse("<net><domain name='d' localOnly='yes'/></net>"))
    named.domain = None
    assert text(named) == "<net/>"


def test_a_new_element_says_what_an_existing_one_may_leave_to_libvirt():
    existing = Named(parse("<net/>"))
    existing.prefix = 64  # libvirt's default already: the document stays as it is
    assert text(existing) == "<net/>"
    new = Named()
    new.prefix = 64
    assert text(new) == "<net prefix=\"64\"/>"
