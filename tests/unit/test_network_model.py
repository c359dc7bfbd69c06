"""Network models and address rules: pure checks, plus libvirt's test driver for round trips."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from virtops.xmlmodels import doc as X
from virtops.base.errors import InvalidInput
from virtops.ops.network import (Address, AddressHost, DhcpHost, NetworkSpec, build_spec, default_dhcp, ip_interface_of,
                                 merge_into)


def test_handbook_mynetwork_defaults():
    spec = build_spec("mynetwork", subnet="192.168.200.0/24", mode="route")
    assert (spec.gateway, spec.dhcp_start, spec.dhcp_end) == ("192.168.200.1", "192.168.200.128", "192.168.200.254")
    node = spec.to_element()
    X.validate(node, "network")
    assert node.find("forward").get("mode") == "route" and node.find("forward").get("dev") is None


def test_stock_default_shape():
    spec = build_spec("default", subnet="192.168.122.0/24", dhcp="192.168.122.2-192.168.122.254", bridge="virbr0")
    node = spec.to_element()
    assert node.find("forward").get("mode") == "nat"
    assert node.find("ip").get("address") == "192.168.122.1"
    assert NetworkSpec.from_element(node) == spec


@pytest.mark.parametrize("mode", ["nat", "route", "open", "isolated"])
def test_every_mode_validates_and_round_trips(mode):
    spec = build_spec("n1", subnet="10.20.0.0/16", mode=mode, ipv6="fd00:20::/64", domain="lab.example", mtu=9000,
                      hosts=[DhcpHost(mac="52:54:00:00:00:01", ip="10.20.0.9", name="db")])
    again = NetworkSpec.from_element(spec.to_element())
    assert again == spec


def test_bridge_mode():
    spec = build_spec("br", mode="bridge", bridge="br0")
    node = spec.to_element()
    assert node.find("ip") is None and node.find("bridge").get("name") == "br0"
    with pytest.raises(InvalidInput, match="^mode: .*drop subnet"):
        build_spec("br", mode="bridge", bridge="br0", subnet="10.0.0.0/24")
    with pytest.raises(InvalidInput, match="^bridge: "):
        build_spec("br", mode="bridge")


@pytest.mark.parametrize("kwargs, field", [
    (dict(name="bad/name", subnet="10.0.0.0/24"), "name"),
    (dict(name="", subnet="10.0.0.0/24"), "name"),
    (dict(name="n", subnet="10.0.0.1/24"), "subnet"),
    (dict(name="n", subnet="10.0.0.0"), "subnet"),
    (dict(name="n", subnet="10.0.0.0/31"), "subnet"),
    (dict(name="n", subnet="fd00::/64"), "subnet"),
    (dict(name="n", subnet="banana"), "subnet"),
    (dict(name="n"), "subnet"),
    (dict(name="n", subnet="10.0.0.0/24", gateway="10.0.1.1"), "gateway"),
    (dict(name="n", subnet="10.0.0.0/24", gateway="10.0.0.0"), "gateway"),
    (dict(name="n", subnet="10.0.0.0/24", gateway="10.0.0.255"), "gateway"),
    (dict(name="n", subnet="10.0.0.0/24", gateway="x"), "gateway"),
    (dict(name="n", subnet="10.0.0.0/24", dhcp="10.0.0.100-10.0.1.5"), "dhcp"),
    (dict(name="n", subnet="10.0.0.0/24", dhcp="10.0.0.200-10.0.0.100"), "dhcp"),
    (dict(name="n", subnet="10.0.0.0/24", dhcp="10.0.0.1-10.0.0.100"), "dhcp"),
    (dict(name="n", subnet="10.0.0.0/24", dhcp="10.0.0.100"), "dhcp"),
    (dict(name="n", subnet="10.0.0.0/24", dhcp="10.0.0.100-10.0.0.255"), "dhcp"),
    (dict(name="n", subnet="10.0.0.0/24", mode="isolated", dev="eth0"), "dev"),
    (dict(name="n", subnet="10.0.0.0/24", mode="open", dev="eth0"), "dev"),
    (dict(name="n", subnet="10.0.0.0/24", dev="bad name"), "dev"),
    (dict(name="n", subnet="10.0.0.0/24", bridge="a-name-longer-than-15"), "bridge"),
    (dict(name="n", subnet="10.0.0.0/24", mode="mesh"), "mode"),
    (dict(name="n", subnet="10.0.0.0/24", ipv6="fd00::1/64"), "ipv6"),
    (dict(name="n", subnet="10.0.0.0/24", ipv6="10.1.0.0/24"), "ipv6"),
    (dict(name="n", subnet="10.0.0.0/24", mtu=10), "mtu"),
    (dict(name="n", subnet="10.0.0.0/24", domain="bad domain"), "domain"),
    (dict(name="n", subnet="10.0.0.0/24", hosts=[DhcpHost(mac="zz", ip="10.0.0.5")]), "mac"),
    (dict(name="n", subnet="10.0.0.0/24", hosts=[DhcpHost(mac="52:54:00:00:00:01", ip="10.0.9.5")]), "ip"),
    (dict(name="n", subnet="10.0.0.0/24", hosts=[DhcpHost(mac="52:54:00:00:00:01", ip="10.0.0.1")]), "ip"),
])
def test_refusals_name_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        build_spec(**kwargs)
    message = str(err.value)
    assert message.startswith(f"{field}: ") and message.endswith(".") and "\n" not in message


@given(st.integers(min_value=8, max_value=30), st.integers(min_value=0, max_value=2**32 - 1))
def test_default_dhcp_is_upper_half_inside_the_subnet(prefix, seed):
    subnet = ipaddress.ip_network(f"{ipaddress.ip_address(seed)}/{prefix}", strict=False)
    if subnet.is_multicast or subnet.is_reserved:
        return
    spec = build_spec("n", subnet=str(subnet))
    start, end = ipaddress.ip_address(spec.dhcp_start), ipaddress.ip_address(spec.dhcp_end)
    gateway = ipaddress.ip_address(spec.gateway)
    assert subnet.network_address < start <= end < subnet.broadcast_address
    assert not start <= gateway <= end
    assert end == subnet.broadcast_address - 1
    assert (start, end) == default_dhcp(subnet) or prefix == 30


def test_ip_interface_of_reads_prefix_and_netmask():
    assert str(ip_interface_of(X.element("ip", address="10.1.2.1", netmask="255.255.0.0"))) == "10.1.2.1/16"
    assert str(ip_interface_of(X.element("ip", address="fd00::1", prefix="64", family="ipv6"))) == "fd00::1/64"


def test_merge_keeps_what_virtops_does_not_model():
    old = X.parse("<network><name>n</name><uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>"
                  "<forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>"
                  "<bridge name='virbr5'/><mac address='52:54:00:aa:bb:cc'/>"
                  "<dns><host ip='10.0.0.7'><hostname>seven</hostname></host></dns>"
                  "<ip address='10.0.0.1' netmask='255.255.255.0'/></network>")
    spec = NetworkSpec.from_element(old).model_copy(update={"mode": "route"})
    new = merge_into(old, spec)
    assert new.find("mac").get("address") == "52:54:00:aa:bb:cc"
    assert new.find("dns/host/hostname").text == "seven"
    assert new.find("forward").get("mode") == "route" and len(new.findall("ip")) == 1


def test_create_on_test_driver(test_host):
    nets = test_host.networks
    info = nets.create("t1", subnet="10.55.0.0/24", mode="isolated")
    assert info.active and info.autostart and info.mode == "isolated" and info.dhcp_range == "10.55.0.128-10.55.0.254"
    with pytest.raises(InvalidInput, match="^subnet: .*overlaps .* of network t1"):
        nets.create("t2", subnet="10.55.0.0/16")
    with pytest.raises(InvalidInput, match="^name: "):
        nets.create("t1", subnet="10.56.0.0/24")


# -- the multi-address form (addresses:) --------------------------------------------------------
def _addr(address: str, dhcp=(), hosts=()) -> Address:
    return Address(address=address, dhcp=list(dhcp), hosts=[AddressHost(**h) for h in hosts])


MULTI_XML = Path(__file__).parents[1] / "data" / "corpus" / "net-multi-address.xml"


def test_every_address_of_a_network_reads_and_writes_back_as_libvirt_formats_it():
    from virtops.spec import rawxml

    node = X.parse(MULTI_XML.read_text())
    kept = NetworkSpec.from_element(node, every_address=True)
    assert [a.address for a in kept.addresses] == ["10.91.4.1/24", "10.91.5.1/24", "fd91:4::1/64", "fd91:5::1/64"]
    assert kept.subnet is None and kept.ipv6 is None
    built = build_spec(kept.name, mode=kept.mode, bridge=kept.bridge, addresses=kept.addresses, kept=kept)
    assert rawxml.same("network", built.to_xml(), MULTI_XML.read_text())
    merged = merge_into(node, built.model_copy(update={"addresses": built.addresses[:1]}))
    assert [ip.get("address") for ip in merged.findall("ip")] == ["10.91.4.1"]


@pytest.mark.parametrize("addresses,where,field", [
    ([_addr("10.1.0.1/24"), _addr("10.2.0.1/24", dhcp=["10.1.0.5-10.1.0.9"])], ("addresses", 1), "dhcp"),
    ([_addr("10.1.0.1/24", dhcp=["10.1.0.5-10.1.0.1"])], ("addresses", 0), "dhcp"),
    ([_addr("10.1.0.1/24", dhcp=["10.1.0.0-10.1.0.9"])], ("addresses", 0), "dhcp"),
    ([_addr("10.1.0.5/24", dhcp=["10.1.0.2-10.1.0.9"])], ("addresses", 0), "dhcp"),
    ([_addr("fd00::1/64", dhcp=["10.1.0.2-10.1.0.9"])], ("addresses", 0), "dhcp"),
    ([_addr("10.1.0.1/24"), _addr("10.1.0.129/25")], ("addresses", 1), "address"),
    ([_addr("fd00::1/48"), _addr("fd00:0:0:1::1/64")], ("addresses", 1), "address"),
    ([_addr("10.1.0.1/24", dhcp=["10.1.0.5-10.1.0.9"]), _addr("10.2.0.1/24", dhcp=["10.2.0.5-10.2.0.9"])],
     ("addresses", 1), "dhcp"),
    ([_addr("10.1.0.1")], ("addresses", 0), "address"),
    ([_addr("10.1.0.0/24")], ("addresses", 0), "address"),
    ([_addr("10.1.0.1/31")], ("addresses", 0), "address"),
    ([_addr("10.1.0.1/24", hosts=[{"ip": "10.1.0.5"}])], ("addresses", 0, "hosts", 0), "mac"),
    ([_addr("fd00::1/64", hosts=[{"ip": "fd00::5"}])], ("addresses", 0, "hosts", 0), "id"),
    ([_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "ip": "10.9.0.5"}])], ("addresses", 0, "hosts", 0), "ip"),
    ([_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "ip": "10.1.0.1"}])], ("addresses", 0, "hosts", 0), "ip"),
    ([_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "ip": "10.1.0.5", "name": "a.b"}])],
     ("addresses", 0, "hosts", 0), "name"),
    ([_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "ip": "10.1.0.5"}]),
      _addr("fd00::1/64", hosts=[{"mac": "52:54:00:00:00:01", "ip": "fd00::5"}])], ("addresses", 1, "hosts", 0), "mac"),
    ([_addr("fd00::1/64", hosts=[{"mac": "52:54:00:00:00:01", "name": "six", "ip": "fd00::5"}])],
     ("addresses", 0, "hosts", 0), "mac"),  # libvirt refuses a MAC on an IPv6 host
    ([_addr("10.1.0.1/24", hosts=[{"id": "0:1", "ip": "10.1.0.5"}])], ("addresses", 0, "hosts", 0), "mac"),
    ([_addr("fd00::1/64", hosts=[{"id": "0:1", "ip": "fd00::5"}, {"id": "0:2", "ip": "fd00::5"}])],
     ("addresses", 0, "hosts", 1), "ip"),
])
def test_each_rule_runs_on_every_address_and_names_where(addresses, where, field):
    with pytest.raises(InvalidInput) as err:
        build_spec("n", addresses=addresses)
    assert err.value.location == where and err.value.field == field
    assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_a_name_may_repeat_as_libvirt_takes_it():
    """libvirt 9.0 defines and starts each of these (checked on a lab host; the corpus's cx-multi
    has both): one name on an IPv4 and an IPv6 host, a dual-stack guest dnsmasq answers by it in each
    family, and one name on two hosts of a family (a guest with two NICs), by MAC or by name only."""
    for addresses in (
            [_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "name": "web1", "ip": "10.1.0.5"}]),
             _addr("fd00::1/64", hosts=[{"name": "web1", "ip": "fd00::5"}])],
            [_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01", "name": "web1", "ip": "10.1.0.5"},
                                         {"mac": "52:54:00:00:00:02", "name": "web1", "ip": "10.1.0.6"}])],
            [_addr("fd00::1/64", hosts=[{"name": "x", "ip": "fd00::5"}, {"name": "x", "ip": "fd00::6"}])]):
        assert build_spec("n", addresses=addresses).addresses == addresses


@pytest.mark.parametrize("kwargs", [dict(subnet="10.1.0.0/24"), dict(ipv6="fd00::/64"), dict(dhcp=False),
                                    dict(mode="bridge", bridge="br0")])
def test_addresses_take_the_place_of_the_single_address_fields(kwargs):
    with pytest.raises(InvalidInput) as err:
        build_spec("n", addresses=[_addr("10.9.0.1/24")], **kwargs)
    assert err.value.field == "addresses"


def test_a_dotted_name_the_host_gives_already_is_kept():
    kept = NetworkSpec(name="n", addresses=[_addr("10.1.0.1/24", hosts=[{"mac": "52:54:00:00:00:01",
                                                                          "ip": "10.1.0.5", "name": "a.b"}])])
    assert build_spec("n", addresses=kept.addresses, kept=kept).addresses == kept.addresses


def test_an_address_the_network_has_keeps_its_netmask_and_a_new_one_says_prefix():
    node = X.parse("<network><name>n</name><ip address='10.1.0.1' netmask='255.255.255.0'/></network>")
    spec = build_spec("n", addresses=[_addr("10.2.0.1/16"), _addr("10.1.0.1/24", dhcp=["10.1.0.5-10.1.0.9"])])
    ips = merge_into(node, spec).findall("ip")
    assert [dict(ip.attrib) for ip in ips] == [{"address": "10.2.0.1", "prefix": "16"},
                                              {"address": "10.1.0.1", "netmask": "255.255.255.0"}]
    assert ips[1].find("dhcp/range").attrib == {"start": "10.1.0.5", "end": "10.1.0.9"}


# -- the IPv6 flags: <network ipv6='yes'> and <nat ipv6='yes'> -----------------------------------
CORPUS = Path(__file__).parents[1] / "data" / "corpus"


def test_the_ipv6_flags_are_written_where_libvirt_reads_them_and_read_back():
    nat = build_spec("v6nat", ipv6="fd00:30::/64", nat_ipv6=True, ipv6_guests=True, bridge="virbr30")
    node = nat.to_element()  # validated against libvirt's schema
    assert (node.get("ipv6"), node.find("forward/nat").get("ipv6")) == ("yes", "yes")
    assert NetworkSpec.from_element(node) == nat
    isolated = build_spec("guests6", mode="isolated", ipv6_guests=True)  # no address at all: libvirt's use of it
    assert X.to_string(isolated.to_element()) == '<network ipv6="yes">\n  <name>guests6</name>\n</network>\n'
    assert NetworkSpec.from_element(isolated.to_element()) == isolated


def test_nat_for_ipv6_goes_before_a_forward_interface_and_leaves_with_nat_mode():
    node = X.parse("<network><name>n</name><forward mode='nat' dev='eth0'><interface dev='eth0'/></forward>"
                   "<ip family='ipv6' address='fd00:31::1' prefix='64'/></network>")
    spec = NetworkSpec.from_element(node)
    with_nat = merge_into(node, spec.model_copy(update={"nat_ipv6": True}))
    assert [child.tag for child in with_nat.find("forward")] == ["nat", "interface"]
    routed = merge_into(with_nat, spec.model_copy(update={"mode": "route", "dev": None}))
    assert routed.find("forward/nat") is None and NetworkSpec.from_element(routed).nat_ipv6 is False


@pytest.mark.parametrize("kwargs,field", [
    (dict(mode="route", subnet="10.1.0.0/24", ipv6="fd00::/64", nat_ipv6=True), "nat_ipv6"),
    (dict(mode="isolated", ipv6="fd00::/64", nat_ipv6=True), "nat_ipv6"),
    (dict(subnet="10.1.0.0/24", nat_ipv6=True), "nat_ipv6"),  # no IPv6 address: it would do nothing
    (dict(addresses=[_addr("10.1.0.1/24")], nat_ipv6=True), "nat_ipv6"),
    (dict(mode="bridge", bridge="br0", ipv6_guests=True), "ipv6_guests"),
    (dict(mode="nat", ipv6_guests=True), "subnet"),  # libvirt: NAT needs an address even so
    (dict(mode="isolated"), "subnet"),  # no address, and no IPv6 between guests
])
def test_ipv6_flags_refused_where_libvirt_refuses_them_or_they_do_nothing(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        build_spec("n", **kwargs)
    assert err.value.field == field
    assert str(err.value).endswith(".") and "\n" not in str(err.value)


def test_a_flag_the_host_has_already_is_kept_even_where_it_does_nothing():
    kept = NetworkSpec(name="n", subnet="10.1.0.0/24", gateway="10.1.0.1", nat_ipv6=True)
    assert build_spec("n", subnet="10.1.0.0/24", nat_ipv6=True, kept=kept).nat_ipv6
    kept = NetworkSpec(name="n", mode="bridge", bridge="br0", ipv6_guests=True)
    assert build_spec("n", mode="bridge", bridge="br0", ipv6_guests=True, kept=kept).ipv6_guests


def test_ipv6_no_stays_as_the_document_spells_it():
    node = X.parse("<network ipv6='no'><name>n</name><forward mode='nat'><nat ipv6='no'/></forward>"
                   "<ip family='ipv6' address='fd00:32::1' prefix='64'/></network>")
    spec = NetworkSpec.from_element(node)
    assert (spec.ipv6_guests, spec.nat_ipv6) == (False, False)
    assert X.to_string(merge_into(node, spec)) == X.to_string(node)


@pytest.mark.parametrize("name,every_address", [("net-isolated-ipv6-flag.xml", False),
                                                 ("net-ipv6-only-nat.xml", True)])
def test_the_corpus_networks_with_ipv6_flags_are_described_by_the_fields(name, every_address):
    """Exported as fields (the DHCPv6 one in the addresses: form), not as xml:; built again from
    them, for a fresh host (no `kept`), they are what libvirt holds."""
    from virtops.spec import rawxml
    from virtops.spec.document import network_entry
    from virtops.spec.plan import beyond_the_addresses, beyond_the_fields

    text = (CORPUS / name).read_text()
    node = X.parse(text)
    assert beyond_the_fields(node) is every_address and not beyond_the_addresses(node)
    entry = network_entry(NetworkSpec.from_element(node, every_address=every_address), True, True)
    assert entry.ipv6_guests or entry.nat_ipv6
    built = build_spec(entry.name, **entry.build_options())
    assert rawxml.same("network", built.to_xml(), text)


def test_an_edit_keeps_the_flags_unless_told_and_nat_for_ipv6_leaves_with_nat():
    from virtops.ops.network import Networks, _changed_fields

    old = build_spec("n", subnet="10.1.0.0/24", ipv6="fd00:33::/64", nat_ipv6=True, ipv6_guests=True)
    edit = Networks._edited_spec
    kept = edit(None, old, None, None, None, None, None, None, None)
    assert (kept.nat_ipv6, kept.ipv6_guests) == (True, True)
    routed = edit(None, old, None, None, None, "route", None, None, None)
    assert (routed.nat_ipv6, routed.ipv6_guests) == (False, True)
    assert _changed_fields(old, routed) == ["mode nat -> route", "NAT for IPv6 on -> off"]
    with pytest.raises(InvalidInput) as err:
        edit(None, old, None, None, None, "route", None, None, None, nat_ipv6=True)
    assert err.value.field == "nat_ipv6"


@pytest.mark.parametrize("mode", ["nat", "route", "open"])
def test_an_edit_of_a_network_without_an_address_into_a_forwarding_mode_is_refused_by_its_mode(mode):
    """libvirt refuses nat, route and open forwarding without an address (its XML error); the core
    says so first, naming the mode, and takes the same edit with a subnet."""
    from virtops.ops.network import Networks

    bare = NetworkSpec(name="bare", mode="isolated", bridge="br9", ipv6_guests=True)
    edit = Networks._edited_spec
    assert edit(None, bare, None, None, None, None, None, None, None, ipv6_guests=False).mode == "isolated"
    with pytest.raises(InvalidInput) as err:
        edit(None, bare, None, None, None, mode, None, None, None)
    assert err.value.field == "mode" and "give the network a subnet too" in str(err.value)
    assert edit(None, bare, "10.9.0.0/24", None, None, mode, None, None, None).subnet == "10.9.0.0/24"


def test_an_ipv4_host_given_by_name_only_is_one_libvirt_accepts():
    """dnsmasq matches it by the host name its client sends: the addresses: form carries it, and
    export no longer needs xml: for it."""
    from virtops.spec import rawxml
    from virtops.spec.plan import beyond_the_addresses, beyond_the_fields

    text = ("<network><name>byname</name><bridge name='virbr41'/><forward mode='nat'/>"
            "<ip address='10.41.0.1' prefix='24'><dhcp><range start='10.41.0.100' end='10.41.0.200'/>"
            "<host name='printer' ip='10.41.0.5'/></dhcp></ip></network>")
    node = X.parse(text)
    assert beyond_the_fields(node) and not beyond_the_addresses(node)
    kept = NetworkSpec.from_element(node, every_address=True)
    assert kept.addresses[0].hosts == [AddressHost(name="printer", ip="10.41.0.5")]
    built = build_spec(kept.name, mode=kept.mode, bridge=kept.bridge, addresses=kept.addresses)
    assert rawxml.same("network", built.to_xml(), text)


def test_a_host_known_by_name_only_stays_through_a_change_of_the_single_form():
    """`net edit` and the host entries read the single form, whose hosts are by MAC: a host by name
    only is neither shown as one with an empty MAC nor dropped (nor written with mac='')."""
    node = X.parse("<network><name>byname</name><forward mode='nat'/><ip address='10.41.0.1' prefix='24'><dhcp>"
                   "<host name='printer' ip='10.41.0.5'/><host mac='52:54:00:00:00:02' ip='10.41.0.6'/>"
                   "</dhcp></ip></network>")
    spec = NetworkSpec.from_element(node)
    assert spec.hosts == [DhcpHost(mac="52:54:00:00:00:02", ip="10.41.0.6")]
    assert X.to_string(merge_into(node, spec)) == X.to_string(node)
    changed = merge_into(node, spec.model_copy(update={"mtu": 1400, "hosts": []}))  # validated by libvirt's schema
    assert [dict(h.attrib) for h in changed.iterfind("ip/dhcp/host")] == [{"name": "printer", "ip": "10.41.0.5"}]


KEYED = X.parse("<network><name>keyed</name><ip address='10.42.0.1' prefix='24'><dhcp>"
                "<host mac='52:54:00:42:00:01' ip='10.42.0.10'/><host name='b.example.com' ip='10.42.0.11'/></dhcp></ip>"
                "<ip family='ipv6' address='fd00:42::1' prefix='64'><dhcp>"
                "<host id='0:1:0:1:2c:0:0:1:52:54:0:42:0:2' ip='fd00:42::10'/>"
                "<host name='b.example.com' ip='fd00:42::11'/></dhcp></ip></network>")


@pytest.mark.parametrize("key, index, ip", [
    ({"mac": "52-54-00-42-00-01"}, 0, "10.42.0.10"),                      # any spelling of the MAC
    ({"duid": "00:01:00:01:2c:00:00:01:52:54:00:42:00:02"}, 1, "fd00:42::10"),  # the DUID's bytes, zeros or not
    ({"ip": "fd00:42:0::11"}, 1, "fd00:42::11"),                           # any spelling of the address
    ({"name": "b.example.com", "ip": "10.42.0.11"}, 0, "10.42.0.11"),       # net update's fragment: all of it
])
def test_a_key_picks_the_one_entry_with_its_values_under_its_own_address(key, index, ip):
    from virtops.ops.network import held_hosts, pick_host

    picked = pick_host("keyed", held_hosts(KEYED), key)
    assert (picked.index, picked.entry.ip) == (index, ip)


@pytest.mark.parametrize("key, field, words", [
    ({"name": "b.example.com"}, "name", "picks 2 host entries of network keyed (name b.example.com -> 10.42.0.11, "
                                        "name b.example.com -> fd00:42::11); give ip instead to pick one."),
    ({"mac": "52:54:00:42:00:09"}, "mac", "no host entry for 52:54:00:42:00:09; its entries: MAC 52:54:00:42:00:01 -> "
                                          "10.42.0.10, name b.example.com -> 10.42.0.11, DUID "
                                          "0:1:0:1:2c:0:0:1:52:54:0:42:0:2 -> fd00:42::10, name b.example.com -> "
                                          "fd00:42::11."),
    ({"ip": "10.42.0.999"}, "ip", "'10.42.0.999' is not an IP address"),
])
def test_a_key_that_picks_none_or_several_is_refused_naming_the_entries(key, field, words):
    from virtops.ops.network import held_hosts, pick_host

    with pytest.raises(InvalidInput) as err:
        pick_host("keyed", held_hosts(KEYED), key)
    assert err.value.field == field and words in str(err.value)


def test_an_edit_of_the_ipv6_subnet_moves_the_host_address_only_with_it():
    """A foreign network's own IPv6 address (here ::5) stays through other edits; a new subnet gets
    the first address, as net create --ipv6 gives it; "" removes it, and NAT for IPv6 with it."""
    from virtops.ops.network import Networks, _changed_fields

    old = NetworkSpec(name="n", mode="nat", bridge="br9", subnet="10.1.0.0/24", gateway="10.1.0.1",
                      ipv6="fd00:33::/64", ipv6_gateway="fd00:33::5", nat_ipv6=True)
    edit = Networks._edited_spec
    assert edit(None, old, None, None, None, None, None, "lab", None).ipv6_gateway == "fd00:33::5"
    moved = edit(None, old, None, None, None, None, None, None, None, ipv6="fd00:34::/64")
    assert (moved.ipv6, moved.ipv6_gateway) == ("fd00:34::/64", "fd00:34::1")
    assert _changed_fields(old, moved) == ["IPv6 subnet fd00:33::/64 -> fd00:34::/64"]
    removed = edit(None, old, None, None, None, None, None, None, None, ipv6="")
    assert (removed.ipv6, removed.ipv6_gateway, removed.nat_ipv6) == (None, None, False)
    with pytest.raises(InvalidInput) as err:  # NAT for IPv6 asked for on the address being removed
        edit(None, old, None, None, None, None, None, None, None, ipv6="", nat_ipv6=True)
    assert err.value.field == "nat_ipv6"
    foreign = old.model_copy(update={"ipv6": None, "ipv6_gateway": None})  # a host's network as it is
    assert edit(None, foreign, None, None, None, None, None, None, None, nat_ipv6=True).nat_ipv6
    with pytest.raises(InvalidInput) as err:
        edit(None, old, None, None, None, None, None, None, None, ipv6="10.2.0.0/24")
    assert err.value.field == "ipv6"


def test_dhcpv6_needs_a_prefix_of_64_or_longer_as_dnsmasq_takes_it():
    from virtops.ops.network import check_addresses

    with pytest.raises(InvalidInput) as err:
        check_addresses([Address(address="fd00:35::1/63", hosts=[AddressHost(id="0:3:0:1:52:54:0:0:0:1",
                                                                            ip="fd00:35::10")])])
    assert err.value.field == "address" and "dnsmasq gives on a prefix of /64 or longer only" in str(err.value)
    assert check_addresses([Address(address="fd00:35::1/63")])[0].address == "fd00:35::1/63"  # no DHCPv6: any prefix
    assert check_addresses([Address(address="fd00:35::1/80", dhcp=["fd00:35::100-fd00:35::1ff"])])
