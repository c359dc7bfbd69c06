"""Virtual networks: typed models that round-trip to libvirt network XML, and the operations on them.

Every operation validates against the live host before it changes anything, and a multi-step
operation (create, define --replace, edit, default) undoes its own partial work when a step fails.

The host's own addresses and routes (a new subnet must not overlap them) are read from the network
namespace of the libvirt daemon; see `HostFacts` and docs/networks.md for why and how.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlparse

import libvirt
from lxml import etree
from pydantic import Field
from virtops.daemon import lookups
from virtops.ops import rows
from virtops.xmlmodels.values import MODES_WITH_DEV, NETWORK_MODES, NetworkMode
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.devices import NicXml
from virtops.xmlmodels.domain import DomainXml
from virtops.xmlmodels.network import DhcpHostXml, IpXml, NetworkXml
from virtops.base.hostlock import locks_host
from virtops.base import leftovers
from virtops.daemon import owned
from virtops.base.undo import undo_on_failure
from virtops.base.errors import InvalidInput, NeedsOption, VirtopsError, by_face, command, libvirt_errors, located, term
from virtops.base.model import STRICT, Model, changes_model
from virtops.ops.impact import Impact

MODES = NETWORK_MODES  # the name the callers know

# What libvirt keeps unchanged as a name: no '/', no spaces, nothing a shell or a file name mangles.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
IFNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # Linux IFNAMSIZ - 1
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
DOMAIN_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

STOCK_DEFAULT = dict(name="default", mode="nat", bridge="virbr0", subnet="192.168.122.0/24",
                     gateway="192.168.122.1", dhcp_start="192.168.122.2", dhcp_end="192.168.122.254")
DETACH_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
class DhcpHost(Model):
    """A static DHCP lease: <host mac=... ip=... name=...> inside <dhcp> (xmlmodels.network.DhcpHostXml).
    The one model of it in every face: `net host add`'s options, the REST API's body, the spec's
    entries of a network's hosts."""

    model_config = STRICT

    mac: str = Field(description="The guest NIC's MAC address.")
    ip: str = Field(description="The fixed IPv4 address, inside the subnet.")
    name: str | None = Field(None, description="Host name handed out with the lease.")

    def to_element(self) -> etree._Element:
        return DhcpHostXml().update(mac=self.mac, name=self.name, ip=self.ip).node

    @classmethod
    def from_element(cls, node: etree._Element) -> "DhcpHost":
        host = DhcpHostXml(node)
        return cls(mac=host.mac or "", ip=host.ip or "", name=host.name)


class AddressHost(Model):
    """A static DHCP host of one address: an IPv4 one by MAC or name, an IPv6 one by DUID (id) or name."""

    model_config = STRICT

    mac: str | None = None
    id: str | None = None
    name: str | None = None
    ip: str


class HostKey(Model):
    """What picks one static DHCP host of a network (`net host remove`): exactly one of what libvirt
    knows hosts by. A host made by another tool may have no MAC (known by name only, or an IPv6 one
    by DUID), so each of them picks, across every address of the network."""

    model_config = STRICT

    mac: str | None = Field(None, description="The MAC of the host entry (IPv4 hosts).")
    name: str | None = Field(None, description="The host name of the entry (a host known by name only has no MAC).")
    ip: str | None = Field(None, description="The fixed address of the entry, IPv4 or IPv6.")
    duid: str | None = Field(None, description="The DUID of the entry (libvirt's id=; IPv6 hosts).")


class Address(Model):
    """One address of a network (libvirt's <ip>; its family follows from the address): the host's
    address on it with the prefix (ADDRESS/PREFIX), its DHCP ranges (START-END) and static hosts."""

    model_config = STRICT

    address: str = Field(description="The host's address on the network with the prefix, e.g. 192.168.200.1/24 "
                                     "or fd00:200::1/64.")
    dhcp: list[str] = Field([], description="DHCP ranges, START-END, inside this address's subnet; none: no DHCP.")
    hosts: list[AddressHost] = []

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(self.address)

    def ip_values(self) -> dict:
        ranges = [dict(zip(("start", "end"), text.split("-"))) for text in self.dhcp]
        return dict(family="ipv6" if self.interface.version == 6 else None, address=str(self.interface.ip),
                    prefix=self.interface.network.prefixlen, ranges=ranges,
                    hosts=[host.model_dump() for host in self.hosts])


def addresses_of(node: etree._Element) -> list[Address]:
    """Every <ip> of a network's XML that has an address, as the spec's addresses: form."""
    return [Address(address=str(ip.interface), dhcp=[f"{r.start}-{r.end}" for r in ip.ranges],
                    hosts=[AddressHost(**host.values("mac", "id", "name", "ip")) for host in ip.hosts])
            for ip in NetworkXml(node).ips if ip.interface is not None]


class NetworkRequest(Model):
    """A virtual network as every face asks for it: `net create`'s options, the REST API's body,
    the spec's network entries (and its JSON Schema) are this class; `net edit` and its REST body
    take NetworkChanges, its editable fields. `build_spec` fills the defaults and checks it."""

    model_config = STRICT

    name: str
    mode: NetworkMode = Field("nat", description="nat: guests reach out through the host's address; route: routed "
                                                 "to the physical network; open: routed, without firewall rules; "
                                                 "isolated: nothing beyond it; bridge: a bridge of the host.")
    bridge: str | None = Field(None, description="Bridge name (default: the next free virbrN, and any bridge name "
                                                 "matches; mode bridge: the host's bridge).")
    dev: str | None = Field(None, description="Forward through this host interface only (nat, route); default: "
                                              "any physical device.")
    subnet: str | None = Field(None, description="IPv4 network, e.g. 192.168.200.0/24.")
    gateway: str | None = Field(None, description="The host's address on it (default: the subnet's first address).")
    dhcp: str | bool | None = Field(None, description="DHCP range START-END (default: the upper half of the subnet); "
                                                      "off (false): no DHCP server.")
    hosts: list[DhcpHost] = Field([], description="Static DHCP hosts of the IPv4 subnet (`net host add`).")
    ipv6: str | None = Field(None, description="Also an IPv6 network, e.g. fd00:200::/64.")
    addresses: list[Address] = Field([], description="Every address of the network (several IPv4 and IPv6 ones, "
                                     "each with its DHCP ranges and hosts), in place of subnet, gateway, dhcp, hosts "
                                     "and ipv6.")
    domain: str | None = Field(None, description="DNS domain for the guests.")
    mtu: int | None = Field(None, description="MTU of the bridge.")
    ipv6_guests: bool | None = Field(None, description="IPv6 between the guests although the network has no IPv6 "
                                     "address (libvirt's <network ipv6='yes'>); an isolated network then needs no "
                                     "address at all. Default: off.")
    nat_ipv6: bool | None = Field(None, description="Mode nat: NAT for the IPv6 addresses too, not only routing "
                                  "(libvirt's <nat ipv6='yes'>, libvirt >= 6.5). Default: off.")

    def build_options(self, with_hosts: bool = True) -> dict:
        """The keyword arguments of build_spec (and Networks.create, plan_create)."""
        options = dict(subnet=self.subnet, gateway=self.gateway, dhcp=None if self.dhcp is True else self.dhcp,
                       mode=self.mode, dev=self.dev, bridge=self.bridge, domain=self.domain, ipv6=self.ipv6,
                       mtu=self.mtu, hosts=list(self.hosts) if with_hosts else [],
                       ipv6_guests=bool(self.ipv6_guests), nat_ipv6=bool(self.nat_ipv6))
        if self.addresses:  # only then: Networks.create's callers without it stay as they were
            options["addresses"] = list(self.addresses)
        return options

    def as_kept(self) -> "NetworkSpec":
        """The request as a NetworkSpec, unchecked: what `kept` means to build_spec when a spec's
        own values count as kept until a plan sees the host."""
        return NetworkSpec(name=self.name, mode=self.mode, subnet=self.subnet, ipv6=self.ipv6, hosts=self.hosts,
                           addresses=self.addresses, ipv6_guests=bool(self.ipv6_guests),
                           nat_ipv6=bool(self.nat_ipv6))


# What `net edit` changes in place of a network (or by an announced restart); the rest of its
# fields (name, bridge, hosts, addresses) only a new definition changes (hosts: `net host`).
NETWORK_EDIT_FIELDS = ("mode", "dev", "subnet", "gateway", "dhcp", "ipv6", "domain", "mtu", "ipv6_guests",
                       "nat_ipv6")
NetworkChanges = changes_model(
    NetworkRequest, NETWORK_EDIT_FIELDS, "NetworkChanges",
    "The fields of a network to change (NetworkRequest's); absent ones stay as they are. dev \"\" forwards "
    "to any device again; an empty ipv6 or domain and an MTU of 0 remove them.")


class Lease(Model):
    """A lease dnsmasq handed out, as libvirt reports it (virsh net-dhcp-leases)."""

    mac: str
    ip: str
    prefix: int
    hostname: str | None = None
    expiry_time: int
    type: str
    client_id: str | None = None
    iface: str | None = None


class NetworkSpec(Model):
    """The parts of a libvirt network virtops models (xmlmodels.network.NetworkXml declares where
    each lives). Other parts of an existing network's XML (DNS entries, port groups, bandwidth,
    its MAC) are carried over untouched by `merge_into`."""

    name: str
    mode: str = "nat"    # one of MODES for what virtops creates; a foreign network may show e.g. 'hostdev'
    uuid: str | None = None
    bridge: str | None = None
    dev: str | None = None
    subnet: str | None = None        # IPv4 network, e.g. 192.168.200.0/24
    gateway: str | None = None       # the host's address on it
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    hosts: list[DhcpHost] = []
    ipv6: str | None = None          # IPv6 network, e.g. fd00:200::/64
    ipv6_gateway: str | None = None
    domain: str | None = None
    mtu: int | None = None
    # The multi-address form: every <ip>, in place of subnet, gateway, dhcp, hosts and ipv6.
    addresses: list[Address] = []
    ipv6_guests: bool = False        # <network ipv6='yes'>: IPv6 between guests without an IPv6 address
    nat_ipv6: bool = False           # <nat ipv6='yes'>: masquerade IPv6 too (mode nat only)

    @property
    def has_dhcp(self) -> bool:
        return self.dhcp_start is not None

    def to_element(self) -> etree._Element:
        net = self.write_into(NetworkXml())
        if self.bridge and self.mode != "bridge":  # what virsh and virt-manager give a new bridge
            net.update(stp=True, delay=0)
        X.validate(net.node, "network")
        return net.node

    def write_into(self, net: NetworkXml) -> NetworkXml:
        """Set every field virtops models on a network document, leaving the rest as it is."""
        new_domain = self.domain is not None and net.domain is None
        net.update(name=self.name, uuid=self.uuid, mode=self.mode, dev=self.dev, bridge=self.bridge,
                   mtu=self.mtu, domain=self.domain)
        if new_domain:
            net.domain_local_only = True  # virtops' domains are answered here, never forwarded
        if self.mode == "bridge":  # a host bridge is libvirt's to configure
            net.update(stp=None, delay=None)
        net.update(ipv6_guests=_flag(self.ipv6_guests, net.ipv6_guests),
                   nat_ipv6=_flag(self.nat_ipv6, net.nat_ipv6) if self.mode == "nat" else None)
        if self.addresses:
            net.set_addresses([address.ip_values() for address in self.addresses])
            return net
        net.ipv4 = self._ipv4_values(net.ipv4) if self.subnet else None
        net.ipv6 = dict(address=self.ipv6_gateway, prefix=ipaddress.ip_network(self.ipv6).prefixlen) \
            if self.ipv6 else None
        return net

    def _ipv4_values(self, current: IpXml | None) -> dict:
        """The first range is the spec's; further ranges of the same subnet (virtops models one)
        stay, and so do its hosts known by name only (the single form's hosts are by MAC) that the
        subnet holds (a moved subnet must hold them all: _refuse_ipv4_leftovers)."""
        ranges = [dict(start=self.dhcp_start, end=self.dhcp_end)] if self.has_dhcp else []
        hosts = [dict(mac=h.mac, name=h.name, ip=h.ip) for h in self.hosts]
        if current is not None:
            subnet = ipaddress.ip_network(self.subnet)
            if ranges and str(current.interface.network) == self.subnet:
                ranges += [r.values() for r in list(current.ranges)[1:]]
            hosts += [h.values() for h in current.hosts
                      if not h.mac and h.ip and ipaddress.ip_address(h.ip) in subnet]
        return dict(address=self.gateway, prefix=ipaddress.ip_network(self.subnet).prefixlen, ranges=ranges,
                    hosts=hosts)

    def to_xml(self) -> str:
        return X.to_string(self.to_element())

    @classmethod
    def from_element(cls, node: etree._Element, every_address: bool = False) -> "NetworkSpec":
        """every_address: in the addresses: form (every <ip>), not the first IPv4 and IPv6."""
        if not every_address:
            return cls(**rows.network_fields(node))
        fields = rows.network_fields(node)
        fields.update(subnet=None, gateway=None, dhcp_start=None, dhcp_end=None, hosts=[], ipv6=None,
                      ipv6_gateway=None)
        return cls(**fields, addresses=addresses_of(node))

    @classmethod
    def from_xml(cls, text: str) -> "NetworkSpec":
        return cls.from_element(X.parse(text))


def _flag(wanted: bool, written: bool | None) -> bool | None:
    """A yes/no attribute to write: yes when wanted; else as the document spells "no" (ipv6='no'
    or nothing), so that an unchanged network keeps its own XML."""
    return True if wanted else (False if written is False else None)


def ip_interface_of(ip: etree._Element) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """The address/prefix of an <ip> element, which libvirt writes with prefix= or netmask=."""
    return IpXml(ip).interface


def merge_into(old: etree._Element, spec: NetworkSpec) -> etree._Element:
    """The old definition with the spec's fields set, so an edit changes only what was asked for:
    what the spec does not model (its MAC, DNS entries, port groups, ...) stays as it was."""
    new = spec.write_into(NetworkXml(copy.deepcopy(old))).node
    X.validate(new, "network")
    return new


class NetworkInfo(Model):
    name: str
    uuid: str
    active: bool
    autostart: bool
    persistent: bool
    mode: str
    bridge: str | None = None
    dev: str | None = None
    subnet: str | None = None
    gateway: str | None = None
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    dhcp_range: str | None = None
    ipv6: str | None = None
    domain: str | None = None
    mtu: int | None = None
    hosts: list[DhcpHost] = []
    ipv6_guests: bool | None = None  # IPv6 between guests without an IPv6 address (None: unknown)
    nat_ipv6: bool | None = None     # NAT for IPv6 too (None: unknown)
    addresses: list[dict] = []  # every <ip>: family, address (ADDRESS/PREFIX), dhcp_ranges, hosts
    leases: int = 0
    unreadable: str | None = None  # why the network's XML could not be read; the other fields are then unknown


class EditPlan(Model):
    """What `edit` (and `default`) will do, printed before anything runs."""

    network: str
    live: bool                       # True: net-update only, no restart
    steps: list[str]
    guests: list[tuple[str, str, str]] = []   # (domain, mac, model) of NICs re-attached
    new_xml: str = ""
    changed: list[str] = []


# ---------------------------------------------------------------------------------------------
# Address rules (pure: no host needed)
# ---------------------------------------------------------------------------------------------
def parse_ipv4_subnet(text: str, field_name: str = "subnet") -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidInput(field_name, f"{text!r} is not an IPv4 network; give a CIDR such as 192.168.200.0/24.") from None
    if net.version != 4:
        raise InvalidInput(field_name, f"{text!r} is IPv6; give an IPv4 CIDR here and the IPv6 one with {term('ipv6')}.")
    if str(net.network_address) != text.strip().split("/")[0]:
        raise InvalidInput(field_name, f"{text!r} has host bits set; give the network address, {net}.")
    if "/" not in text:
        raise InvalidInput(field_name, f"{text!r} has no prefix length; give a CIDR such as {text}/24.")
    if net.prefixlen > 30:
        raise InvalidInput(field_name, f"{text!r} is too small for a gateway and guests; use a prefix of /30 or shorter, e.g. /24.")
    return net


def parse_ipv6_subnet(text: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        raise InvalidInput("ipv6", f"{text!r} is not an IPv6 network; give a CIDR with its host bits zero, such as fd00:200::/64.") from None
    if net.version != 6 or "/" not in text:
        raise InvalidInput("ipv6", f"{text!r} is not an IPv6 CIDR; give one such as fd00:200::/64.")
    if net.prefixlen > 126:
        raise InvalidInput("ipv6", f"{text!r} is too small; use a prefix of /126 or shorter, usually /64.")
    return net


def parse_address(text: str, field_name: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidInput(field_name, f"{text!r} is not an IPv4 address; give one such as 192.168.200.1.") from None
    if addr.version != 4:
        raise InvalidInput(field_name, f"{text!r} is IPv6; give an IPv4 address.")
    return addr


def usable_hosts(subnet: ipaddress.IPv4Network) -> str:
    return f"{subnet.network_address + 1}-{subnet.broadcast_address - 1}"


def require_host_address(addr: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network, field_name: str) -> None:
    """An address guests or the gateway can use: inside the subnet, neither network nor broadcast."""
    if addr not in subnet:
        raise InvalidInput(field_name, f"{addr} is outside the subnet {subnet}; give an address in {usable_hosts(subnet)}.")
    if addr in (subnet.network_address, subnet.broadcast_address):
        what = "network" if addr == subnet.network_address else "broadcast"
        raise InvalidInput(field_name, f"{addr} is the {what} address of {subnet}; give an address in {usable_hosts(subnet)}.")


def default_gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def default_dhcp(subnet: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """virt-manager's default: from the middle of the subnet to the last address before broadcast."""
    return subnet.network_address + subnet.num_addresses // 2, subnet.broadcast_address - 1


def parse_dhcp_range(text: str, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address):
    parts = text.split("-")
    if len(parts) != 2:
        raise InvalidInput("dhcp", f"{text!r} is not a range; give START-END such as {_example_range(subnet, gateway)}.")
    start, end = (parse_address(p, "dhcp") for p in parts)
    for addr in (start, end):
        require_host_address(addr, subnet, "dhcp")
    if start > end:
        raise InvalidInput("dhcp", f"the range {start}-{end} starts after it ends; give START-END with START <= END.")
    if start <= gateway <= end:
        raise InvalidInput("dhcp", f"the range {start}-{end} contains the gateway {gateway}; "
                                   f"give a range without it, such as {_example_range(subnet, gateway)}.")
    return start, end


def _example_range(subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> str:
    start, end = default_dhcp(subnet)
    if start <= gateway <= end:
        start = gateway + 1
    return f"{start}-{end}"


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInput("name", f"{name!r} is not accepted; use up to 64 letters, digits, '.', '_', '+' or '-', "
                                   "starting with a letter or digit.")


def check_ifname(name: str, field_name: str) -> None:
    if not IFNAME_PATTERN.match(name or ""):
        raise InvalidInput(field_name, f"{name!r} is not an interface name; use 1-15 letters, digits, '.', '_' or '-'.")


def normalize_mac(text: str) -> str:
    mac = text.strip().lower().replace("-", ":")
    if not MAC_PATTERN.match(mac):
        raise InvalidInput("mac", f"{text!r} is not a MAC address; give six hex pairs such as 52:54:00:12:34:56.")
    if int(mac[:2], 16) & 1:
        raise InvalidInput("mac", f"{text!r} is a multicast address; give a unicast one such as 52:54:00:12:34:56.")
    return mac


def build_spec(name: str, subnet: str | None = None, gateway: str | None = None, dhcp: str | bool | None = None,
               mode: str = "nat", dev: str | None = None, bridge: str | None = None, domain: str | None = None,
               ipv6: str | None = None, mtu: int | None = None, uuid: str | None = None,
               hosts: list[DhcpHost] | None = None, kept: NetworkSpec | None = None,
               addresses: list[Address] | None = None, ipv6_guests: bool = False,
               nat_ipv6: bool = False) -> NetworkSpec:
    """A complete spec from what the user gave, with virt-manager's defaults filled in and every
    rule that needs no host checked. dhcp: None = default range, False = no DHCP, 'START-END'.
    The bridge stays None when not given: the host picks the next free virbrN. A network may be
    IPv6-only (ipv6 without subnet), or have no address at all when isolated with ipv6_guests.
    `kept`: the network as the host has it; the rules that protect new networks (an address to
    have, host names without dots, a flag that does nothing) skip what it already holds.
    addresses: the multi-address form (every <ip>), in place of subnet, gateway, dhcp, hosts, ipv6.
    ipv6_guests: IPv6 between the guests (<network ipv6='yes'>); nat_ipv6: NAT for IPv6 too."""
    if nat_ipv6 and mode != "nat":  # libvirt allows <nat> in mode nat only
        raise InvalidInput("nat_ipv6", f"mode {mode} does no NAT, so it has no NAT for IPv6; choose mode nat "
                                       "or leave NAT for IPv6 off.")
    spec = _addressed_spec(name, subnet, gateway, dhcp, mode, dev, bridge, domain, ipv6, mtu, uuid, hosts, kept,
                           addresses, ipv6_guests)
    return _with_ipv6_flags(spec, ipv6_guests, nat_ipv6, kept)


def _with_ipv6_flags(spec: NetworkSpec, ipv6_guests: bool, nat_ipv6: bool, kept: NetworkSpec | None) -> NetworkSpec:
    """The spec with its IPv6 flags, refused where they would do nothing (unless the host's
    network already is so): NAT for IPv6 without an IPv6 address, guest IPv6 on a host bridge."""
    if nat_ipv6 and not _has_ipv6(spec) and not (kept is not None and kept.nat_ipv6 and not _has_ipv6(kept)):
        raise InvalidInput("nat_ipv6", "the network has no IPv6 address, so NAT for IPv6 would do nothing; give it "
                                       "an IPv6 subnet such as fd00:200::/64 or leave NAT for IPv6 off.")
    if ipv6_guests and spec.mode == "bridge" and not (kept is not None and kept.ipv6_guests):
        raise InvalidInput("ipv6_guests", "a bridge-mode network leaves IPv6 to the host bridge; leave IPv6 between "
                                          "guests off or choose isolated, nat, route or open.")
    return spec.model_copy(update={"ipv6_guests": bool(ipv6_guests), "nat_ipv6": bool(nat_ipv6)})


def _has_ipv6(spec: NetworkSpec) -> bool:
    return spec.ipv6 is not None or any(a.interface.version == 6 for a in spec.addresses)


def _addressed_spec(name, subnet, gateway, dhcp, mode, dev, bridge, domain, ipv6, mtu, uuid, hosts, kept, addresses,
                    ipv6_guests) -> NetworkSpec:
    """build_spec without the IPv6 flags: the name, mode, bridge and every address checked."""
    check_name(name)
    if mode not in MODES:
        raise InvalidInput("mode", f"{mode!r} is not a mode; use one of {', '.join(MODES)}.")
    if dev is not None:
        check_ifname(dev, "dev")
        if mode not in MODES_WITH_DEV:
            raise InvalidInput("dev", f"mode {mode} does not forward through a device; "
                                      f"use {term('dev')} only with nat or route.")
    if bridge is not None:
        check_ifname(bridge, "bridge")
    if mtu is not None and not 68 <= mtu <= 65535:
        raise InvalidInput("mtu", f"{mtu} is out of range; give an MTU between 68 and 65535, usually 1500.")
    if domain is not None and not DOMAIN_PATTERN.match(domain):
        raise InvalidInput("domain", f"{domain!r} is not a DNS domain; give one such as lab.example.")
    if mode == "bridge":
        if addresses:
            raise InvalidInput("addresses", "a bridge-mode network uses the host bridge's own addressing; drop "
                                            "addresses or choose nat, route, open or isolated.")
        return _bridge_mode_spec(name, subnet, gateway, dhcp, bridge, domain, ipv6, mtu, uuid, hosts)
    if addresses:
        given = [flag for flag, value in (("subnet", subnet), ("gateway", gateway), ("ipv6", ipv6),
                                          ("hosts", hosts), ("dhcp", dhcp not in (None, True) or None)) if value]
        if given:
            raise InvalidInput("addresses", f"give the network's addresses either as addresses or as "
                                            f"{', '.join(given)}, not both.")
        return NetworkSpec(name=name, mode=mode, uuid=uuid, bridge=bridge, dev=dev, domain=domain, mtu=mtu,
                           addresses=check_addresses(addresses, kept))
    if subnet is None:
        return _ipv6_only_spec(name, mode, gateway, dhcp, bridge, dev, domain, ipv6, mtu, uuid, hosts, kept,
                               ipv6_guests)
    net = parse_ipv4_subnet(subnet)
    gw = parse_address(gateway, "gateway") if gateway else default_gateway(net)
    require_host_address(gw, net, "gateway")
    start = end = None
    if dhcp is None:
        start, end = default_dhcp(net)
        if start <= gw <= end:  # a gateway given in the upper half: start the range after it
            start = gw + 1
        if start > end:
            raise InvalidInput("dhcp", f"no room for a default DHCP range above the gateway {gw}; "
                                       f"give {term('dhcp', 'START-END')} or {term('dhcp', False)}.")
    elif dhcp is not False:
        start, end = parse_dhcp_range(str(dhcp), net, gw)
    v6 = parse_ipv6_subnet(ipv6) if ipv6 else None
    checked_hosts = []
    for j, host in enumerate(hosts or []):
        with located("hosts", j):
            checked_hosts.append(check_dhcp_host(host, net, gw, hosts or [], kept=kept))
    return NetworkSpec(name=name, mode=mode, uuid=uuid, bridge=bridge, dev=dev, subnet=str(net), gateway=str(gw),
                       dhcp_start=str(start) if start else None, dhcp_end=str(end) if end else None,
                       hosts=checked_hosts, ipv6=str(v6) if v6 else None,
                       ipv6_gateway=str(v6.network_address + 1) if v6 else None, domain=domain, mtu=mtu)


def _ipv6_only_spec(name, mode, gateway, dhcp, bridge, dev, domain, ipv6, mtu, uuid, hosts, kept,
                    ipv6_guests) -> NetworkSpec:
    """A network without IPv4: IPv6 only, or no address at all: isolated with IPv6 between its
    guests (libvirt's use of ipv6='yes'), or isolated as the host already has it (libvirt forwards
    in nat, route and open mode from an address only)."""
    kept_addressless = kept is not None and kept.subnet is None and kept.ipv6 is None and not kept.addresses
    if ipv6 is None and kept_addressless and mode != "isolated":
        raise InvalidInput("mode", f"network {name} has no address, and mode {mode} forwards from one; keep mode "
                                   "isolated, or give the network a subnet too, such as 192.168.200.0/24.")
    if ipv6 is None and not (mode == "isolated" and (ipv6_guests or kept_addressless)):
        raise InvalidInput("subnet", f"a network in mode {mode} needs an address; give an IPv4 subnet such as "
                                     f"{term('subnet', '192.168.200.0/24')} or an IPv6 one such as "
                                     f"{term('ipv6', 'fd00:200::/64')}"
                                     + (", or make it isolated with IPv6 between its guests." if mode == "isolated"
                                        else "."))
    given = [str(term(field)) for field, value in (("gateway", gateway), ("hosts", hosts)) if value]
    if dhcp not in (None, False):
        given.append(str(term("dhcp")))
    if given:
        raise InvalidInput("subnet", f"{', '.join(given)} need an IPv4 subnet; give {term('subnet')} or drop them.")
    v6 = parse_ipv6_subnet(ipv6) if ipv6 else None
    return NetworkSpec(name=name, mode=mode, uuid=uuid, bridge=bridge, dev=dev, ipv6=str(v6) if v6 else None,
                       ipv6_gateway=str(v6.network_address + 1) if v6 else None, domain=domain, mtu=mtu)


def _bridge_mode_spec(name, subnet, gateway, dhcp, bridge, domain, ipv6, mtu, uuid, hosts) -> NetworkSpec:
    """A network that only names an existing host bridge: libvirt gives it no address, DHCP or DNS."""
    given = [str(term(field)) for field, value in (("subnet", subnet), ("gateway", gateway), ("ipv6", ipv6),
                                                   ("domain", domain), ("mtu", mtu), ("hosts", hosts))
             if value]
    if dhcp not in (None, False):
        given.append(str(term("dhcp")))
    if given:
        raise InvalidInput("mode", f"a bridge-mode network uses the host bridge's own addressing; drop {', '.join(given)} "
                                   "or choose nat, route, open or isolated.")
    if not bridge:
        raise InvalidInput("bridge", f"mode bridge needs an existing host bridge; give it with {term('bridge')}, e.g. {term('bridge', 'br0')}.")
    return NetworkSpec(name=name, mode="bridge", uuid=uuid, bridge=bridge)


def check_addresses(addresses: list[Address], kept: NetworkSpec | None = None) -> list[Address]:
    """Every address of a multi-address network checked, on its own and against the others: its
    ranges and hosts inside its own subnet, no two subnets overlapping, no MAC, DUID or IP
    given twice, DHCP on one address per family (libvirt's rule). `kept`: the network as the host
    has it (the names it gives already stay, dotted or not)."""
    kept_names = {h.name for h in kept.hosts} | {h.name for a in kept.addresses for h in a.hosts} if kept else set()
    checked = []
    for k, address in enumerate(addresses):
        with located("addresses", k):
            checked.append(_checked_address(address, kept_names))
    for k, address in enumerate(checked):
        with located("addresses", k):
            _refuse_overlap_and_second_dhcp(address, checked[:k])
    _refuse_repeated_hosts(checked)
    return checked


def _checked_address(address: Address, kept_names: set[str | None]) -> Address:
    text = address.address.strip()
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        interface = None
    if interface is None or "/" not in text:
        raise InvalidInput("address", f"{text!r} is not an address with its prefix; give the host's address on the "
                                      "network, such as 192.168.200.1/24 or fd00:200::1/64.")
    longest = 30 if interface.version == 4 else 126
    if interface.network.prefixlen > longest:
        raise InvalidInput("address", f"{text!r} is too small for the host and guests; use a prefix of /{longest} "
                                      "or shorter.")
    require_host_address(interface.ip, interface.network, "address")
    if interface.version == 6 and (address.dhcp or address.hosts) and interface.network.prefixlen < 64:
        raise InvalidInput("address", f"{interface.network} serves DHCPv6, which dnsmasq gives on a prefix of /64 or "
                                      "longer only; give such a prefix, or drop the address's ranges and hosts.")
    ranges = [_checked_range(r, interface) for r in address.dhcp]
    hosts = []
    for j, host in enumerate(address.hosts):
        with located("hosts", j):
            hosts.append(_checked_address_host(host, interface, kept_names))
    return Address(address=str(interface), dhcp=ranges, hosts=hosts)


def _address_in(text: str, interface, field_name: str):
    """An address of the interface's family inside its subnet, neither its network, broadcast nor
    the host's own address."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        addr = None
    if addr is None or addr.version != interface.version:
        raise InvalidInput(field_name, f"{text!r} is not an IPv{interface.version} address; give one in "
                                       f"{interface.network}.")
    require_host_address(addr, interface.network, field_name)
    if addr == interface.ip:
        raise InvalidInput(field_name, f"{addr} is the host's own address on {interface.network}; give another one.")
    return addr


def _checked_range(text: str, interface) -> str:
    parts = text.split("-")
    if len(parts) != 2:
        raise InvalidInput("dhcp", f"{text!r} is not a range; give START-END inside {interface.network}.")
    start, end = (_address_in(part, interface, "dhcp") for part in parts)
    if start > end:
        raise InvalidInput("dhcp", f"the range {start}-{end} starts after it ends; give START-END with START <= END.")
    if start <= interface.ip <= end:
        raise InvalidInput("dhcp", f"the range {start}-{end} contains the host's address {interface.ip}; give a "
                                   "range without it.")
    return f"{start}-{end}"


def _checked_address_host(host: AddressHost, interface, kept_names: set[str | None]) -> AddressHost:
    ip = _address_in(host.ip, interface, "ip")
    # libvirt's rules: an IPv4 host is matched by MAC or by the name its client sends; an IPv6
    # one by DUID or name, never by MAC (DHCPv6 clients send no MAC).
    if interface.version == 4 and not (host.mac or host.name):
        raise InvalidInput("mac", f"an IPv4 host ({ip}) is known by its MAC or its name; give mac or name.")
    if interface.version == 6 and host.mac:
        raise InvalidInput("mac", f"libvirt knows an IPv6 host ({ip}) by its DUID or name, not its MAC; give id or "
                                  "name instead.")
    if interface.version == 6 and not (host.id or host.name):
        raise InvalidInput("id", f"an IPv6 host ({ip}) is known by its DUID or name; give id or name.")
    if host.name is not None and host.name not in kept_names and not HOSTNAME_PATTERN.match(host.name):
        raise InvalidInput("name", f"{host.name!r} is not a host name; use letters, digits and '-', up to 63.")
    return AddressHost(mac=normalize_mac(host.mac) if host.mac else None, id=host.id, name=host.name, ip=str(ip))


def _hosts_by_name_only(node: etree._Element) -> list[DhcpHost]:
    """The static hosts of a network's first IPv4 address that it knows by name only (the single
    form's hosts, NetworkSpec.hosts, are those with a MAC): their addresses are taken too."""
    ipv4 = NetworkXml(node).ipv4
    return [DhcpHost.from_element(h.node) for h in (ipv4.hosts if ipv4 is not None else []) if not h.mac]


def _ipv6_dhcp_of(node: etree._Element) -> Address | None:
    """The DHCPv6 ranges and static hosts of a network's first IPv6 address (the one NetworkSpec's
    ipv6 is), which the single form does not model and merge_into leaves in place; None without."""
    current = NetworkXml(node).ipv6
    if current is None or not (list(current.ranges) or list(current.hosts)):
        return None
    return Address(address=str(current.interface), dhcp=[f"{r.start}-{r.end}" for r in current.ranges],
                   hosts=[_entry_of(host) for host in current.hosts])


def _refuse_ipv4_leftovers(node: etree._Element, target: ipaddress.IPv4Network) -> None:
    """An edit that moves the IPv4 subnet keeps the address's static hosts, by MAC or by name only
    (NetworkSpec._ipv4_values), so each must be inside the new subnet."""
    current = NetworkXml(node).ipv4
    hosts = [_entry_of(host) for host in current.hosts] if current is not None else []
    outside = [host_text(h) for h in hosts if h.ip and ipaddress.ip_address(h.ip) not in target]
    if outside:
        raise InvalidInput("subnet", f"host entries {', '.join(outside)} are outside {target}; remove them first"
                                     f"{command('net host remove', wrap=' with {}', elsewhere='')}.")


def _refuse_ipv6_leftovers(node: etree._Element, old: NetworkSpec, new: NetworkSpec) -> None:
    """An edit that moves the IPv6 subnet keeps the address's DHCPv6 ranges and static hosts, so they
    must fit the new subnet by the rules of a new network's addresses (check_addresses)."""
    kept = _ipv6_dhcp_of(node)
    if kept is None or new.ipv6 is None or new.ipv6 == old.ipv6:
        return
    target = ipaddress.ip_network(new.ipv6)
    ranges = [r for r in kept.dhcp if any(ipaddress.ip_address(a) not in target for a in r.split("-"))]
    hosts = [host_text(h) for h in kept.hosts if ipaddress.ip_address(h.ip) not in target]
    if ranges or hosts:
        what = " and ".join(filter(None, [ranges and f"its DHCPv6 range {', '.join(ranges)}",
                                          hosts and f"its host entries {', '.join(hosts)}"]))
        way_out = "" if ranges else f", or remove them first{command('net host remove', wrap=' with {}', elsewhere='')}"
        raise InvalidInput("ipv6", f"{what} would be outside {target}; give a subnet that holds them{way_out}.")
    try:
        moved = kept.model_copy(update={"address": f"{new.ipv6_gateway}/{target.prefixlen}"})
        check_addresses([moved], NetworkSpec(name=old.name, addresses=[kept]))  # its names stay, dotted or not
    except InvalidInput as err:
        raise InvalidInput("ipv6", f"with the DHCPv6 ranges and hosts the network keeps, {err.sentence}") from None


def _ipv6_dhcp_going(node: etree._Element, old: NetworkSpec, new: NetworkSpec) -> list[str]:
    """What a plan that removes the IPv6 address says goes with it: its DHCPv6 ranges and hosts."""
    kept = _ipv6_dhcp_of(node)
    if kept is None or new.ipv6 is not None or old.ipv6 is None:
        return []
    return [f"DHCPv6 of {kept.address} goes with it: " + ", ".join([*kept.dhcp, *map(host_text, kept.hosts)])]


def _refuse_overlap_and_second_dhcp(address: Address, before: list[Address]) -> None:
    mine = address.interface.network
    for m, other in enumerate(before):
        theirs = other.interface.network
        if _overlap(mine, theirs):
            raise InvalidInput("address", f"{mine} overlaps {theirs} of addresses[{m}]; give each address a "
                                          "subnet of its own.")
        if mine.version == theirs.version and (address.dhcp or address.hosts) and (other.dhcp or other.hosts):
            raise InvalidInput("dhcp", f"addresses[{m}] already serves IPv{mine.version} DHCP, and libvirt runs it on "
                                       "one address per family; move the ranges and hosts there or drop them.")


def _refuse_repeated_hosts(addresses: list[Address]) -> None:
    """No MAC, DUID or IP given to two hosts. A name may repeat, as libvirt 9.0 takes it: one name on
    an IPv4 and an IPv6 host (a dual-stack guest, which dnsmasq answers in each family by it), or on
    two hosts of one family (a guest with two NICs)."""
    seen: dict[tuple[str, str], str] = {}
    for k, address in enumerate(addresses):
        for j, host in enumerate(address.hosts):
            for key in ("mac", "id", "ip"):
                value = getattr(host, key)
                if value is None:
                    continue
                if (key, value) in seen:
                    with located("addresses", k, "hosts", j):
                        raise InvalidInput(key, f"{value} is already given to the host {seen[(key, value)]}; "
                                                "give each host its own.")
                seen[(key, value)] = f"{host.ip} (addresses[{k}].hosts[{j}])" if key != "ip" else \
                    f"addresses[{k}].hosts[{j}]"


def check_dhcp_host(host: DhcpHost, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address,
                    others: list[DhcpHost], kept: NetworkSpec | None = None) -> DhcpHost:
    """`kept`: the network as the host has it; a name it already gives (dnsmasq takes b.example.com)
    is kept, while a new one is a plain host name."""
    mac = normalize_mac(host.mac)
    ip = parse_address(host.ip, "ip")
    require_host_address(ip, subnet, "ip")
    if ip == gateway:
        raise InvalidInput("ip", f"{ip} is the gateway of the network; give another address in {usable_hosts(subnet)}.")
    kept_names = {h.name for h in kept.hosts} if kept is not None else set()
    if host.name is not None and host.name not in kept_names and not HOSTNAME_PATTERN.match(host.name):
        raise InvalidInput("hostname", f"{host.name!r} is not a host name; use letters, digits and '-', up to 63.")
    for other in others:  # a host the network knows by name only has no MAC (DhcpHost.mac "")
        if other is host:
            continue
        if other.mac and normalize_mac(other.mac) == mac:
            raise InvalidInput("mac", f"{mac} already has a host entry ({other.ip}); remove it first"
                                      f"{command('net host remove', wrap=' with {}', elsewhere='')}.")
        if ipaddress.ip_address(other.ip) == ip:
            whose = other.mac or f"the host named {other.name}"
            raise InvalidInput("ip", f"{ip} is already given to {whose}; choose another address in {usable_hosts(subnet)}.")
    return DhcpHost(mac=mac, ip=str(ip), name=host.name)


# -- which static host an entry's key picks (net host remove, net update delete) ----------------
HOST_KEYS = ("mac", "name", "ip", "duid")  # HostKey's fields, in the order a refusal names them


@dataclass
class HeldHost:
    """A static host as the network's XML holds it: its <host> element and the index of its <ip>
    among the network's (libvirt's parentIndex: net-update finds an IPv6 host only under its own)."""

    index: int
    node: etree._Element

    @property
    def entry(self) -> AddressHost:
        return _entry_of(DhcpHostXml(self.node))


def _entry_of(host: DhcpHostXml) -> AddressHost:
    values = host.values("mac", "id", "name", "ip")
    return AddressHost(**{**values, "ip": values["ip"] or ""})  # libvirt takes a host without one (a name for a MAC)


def held_hosts(node: etree._Element) -> list[HeldHost]:
    """Every static host of a network, under every address (IPv4 and IPv6)."""
    return [HeldHost(k, host.node) for k, ip in enumerate(NetworkXml(node).ips) for host in ip.hosts]


def host_text(entry: AddressHost) -> str:
    """An entry as people know it: what dnsmasq matches it by, and its address."""
    known = f"MAC {entry.mac}" if entry.mac else f"DUID {entry.id}" if entry.id else f"name {entry.name}"
    return f"{known} -> {entry.ip or '-'}"


def pick_host(network: str, hosts: list[HeldHost], key: dict[str, str]) -> HeldHost:
    """The one host whose entry has every value of `key` (HostKey's fields). Refused when none has,
    listing the entries there are, and when several have, naming them and what narrows it."""
    matcher = _host_matcher(key)
    found = [held for held in hosts if matcher(held.entry)]
    field_name = next(iter(key))
    shown = " and ".join(key.values())
    if not found:
        known = ", ".join(host_text(h.entry) for h in hosts) or "none"
        raise InvalidInput(field_name, f"network {network} has no host entry for {shown}; its entries: {known}.")
    if len(found) > 1:
        raise InvalidInput(field_name, f"{shown} picks {len(found)} host entries of network {network} "
                                       f"({', '.join(host_text(h.entry) for h in found)}); give {term('ip')} "
                                       "instead to pick one.")
    return found[0]


def _host_matcher(key: dict[str, str]) -> Callable[[AddressHost], bool]:
    """Whether an entry has each value of the key, compared as libvirt and dnsmasq read them: a MAC
    in any case and separator, an address in any spelling, a DUID's hex bytes with or without zeros."""
    wanted = dict(key)
    if "mac" in wanted:
        wanted["mac"] = normalize_mac(wanted["mac"])
    if "ip" in wanted:
        try:
            ipaddress.ip_address(wanted["ip"].strip())
        except ValueError:
            raise InvalidInput("ip", f"{wanted['ip']!r} is not an IP address; give the entry's address, such as "
                                     "192.168.200.10 or fd00:200::10.") from None
    checks = {"mac": lambda e: e.mac is not None and normalize_mac(e.mac) == wanted["mac"],
              "name": lambda e: e.name == wanted["name"],
              "ip": lambda e: bool(e.ip) and ipaddress.ip_address(e.ip) == ipaddress.ip_address(wanted["ip"].strip()),
              "duid": lambda e: e.id is not None and _duid_bytes(e.id) == _duid_bytes(wanted["duid"])}
    return lambda entry: all(checks[field_name](entry) for field_name in wanted)


def _listed(fields, last: str) -> str:
    """Fields as terms in a sentence: "mac, name, ip or duid"."""
    named = [str(term(field_name)) for field_name in fields]
    return f"{', '.join(named[:-1])} {last} {named[-1]}" if len(named) > 1 else named[0]


def _duid_bytes(text: str) -> tuple:
    """libvirt keeps a DUID as written (0:1:0:1:... or 00:01:00:01:...); dnsmasq reads its hex bytes."""
    parts = text.strip().lower().split(":")
    try:
        return tuple(int(part, 16) for part in parts)
    except ValueError:
        return tuple(parts)


# ---------------------------------------------------------------------------------------------
# The host's own addresses, routes and links
# ---------------------------------------------------------------------------------------------
@dataclass
class HostFacts:
    """Links, addresses and routes of the machine the libvirt daemon runs on (its network namespace).

    libvirt has no API for a host's addresses and routes: virConnectListAllInterfaces needs the
    netcf backend (gone from Debian 12) and its udev backend lists links only, from the sysfs of the
    daemon's mount, without addresses. So for a daemon on this machine (a unix-socket URI) we ask
    the kernel: find the daemon's pid from its socket (SO_PEERCRED), then run `ip -j` in that
    pid's network namespace. For a remote daemon there is nothing to read; `source` says so."""

    links: dict[str, str] = field(default_factory=dict)           # name -> kind ('bridge', 'veth', '' ...)
    addresses: list[tuple[str, ipaddress._BaseNetwork, str]] = field(default_factory=list)  # (dev, network, address)
    routes: list[tuple[str, ipaddress._BaseNetwork]] = field(default_factory=list)          # (dev, destination)
    source: str = ""
    readable: bool = True


def read_host_facts(conn: libvirt.virConnect) -> HostFacts:
    argv_prefix, source = _daemon_netns_prefix(conn)
    if argv_prefix is None:
        return HostFacts(source=source, readable=False)
    facts = HostFacts(source=source)
    for link in _ip_json(argv_prefix, "-d", "link", "show"):
        facts.links[link["ifname"]] = (link.get("linkinfo") or {}).get("info_kind", "")
    for link in _ip_json(argv_prefix, "addr", "show"):
        for addr in link.get("addr_info", []):
            if addr.get("scope") == "link" or "local" not in addr:
                continue
            iface = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}")
            facts.addresses.append((link["ifname"], iface.network, str(iface.ip)))
    for family in ("-4", "-6"):
        for route in _ip_json(argv_prefix, family, "route", "show"):
            dst = route.get("dst", "")
            if dst in ("default", "") or route.get("type") in ("multicast", "unreachable"):
                continue
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{32 if family == '-4' else 128}", strict=False)
            if not net.is_link_local and not net.is_multicast:
                facts.routes.append((route.get("dev", ""), net))
    return facts


def _ip_json(prefix: list[str], *args: str) -> list[dict]:
    result = subprocess.run([*prefix, "ip", "-j", *args], capture_output=True, text=True, timeout=15)
    if result.returncode != 0:
        raise VirtopsError(f"reading the host's network configuration failed: {result.stderr.strip() or 'ip exited ' + str(result.returncode)}.")
    return json.loads(result.stdout or "[]")


def _daemon_netns_prefix(conn: libvirt.virConnect) -> tuple[list[str] | None, str]:
    """The argv prefix that runs a tool in the daemon's network namespace, and a description."""
    uri = conn.getURI()
    parsed = urlparse(uri)
    driver, _, transport = parsed.scheme.partition("+")
    if driver == "test":
        return None, "test driver: it has no host network"
    if (transport and transport != "unix") or (not transport and parsed.hostname):
        return None, f"remote daemon ({uri}): its addresses and routes cannot be read from here"
    path = _socket_path(parsed)
    pid = _peer_pid(path) if path else None
    if pid is None:
        return None, f"no daemon socket found for {uri}"
    ours, theirs = _netns_inode("self"), _netns_inode(str(pid))
    if theirs is None:
        return None, f"the network namespace of the daemon (pid {pid}) is not readable (not root?)"
    if ours == theirs:
        return [], f"this machine's network namespace (daemon pid {pid})"
    if not shutil.which("nsenter"):
        return None, "nsenter is missing, so the daemon's network namespace cannot be read"
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--"], f"the daemon's network namespace (pid {pid})"


def daemon_pid(conn: libvirt.virConnect) -> int | None:
    """The pid behind a daemon's unix socket on this machine (for the QEMU-access check, which
    looks at the daemon's files through /proc/PID/root), or None."""
    path = _socket_path(urlparse(conn.getURI()))
    return _peer_pid(path) if path else None


def _socket_path(parsed) -> str | None:
    query = parse_qs(parsed.query)
    if "socket" in query:
        return query["socket"][0]
    base = "/run/libvirt" if parsed.path.rstrip("/") == "/system" else None
    if base is None:
        return None
    for name in ("virtqemud-sock", "virtnetworkd-sock", "libvirt-sock"):
        if os.path.exists(f"{base}/{name}"):
            return f"{base}/{name}"
    return None


def _peer_pid(path: str) -> int | None:
    """The pid of the process listening on a unix socket (with socket activation: systemd's,
    which shares the daemon's network namespace)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid or None
    except OSError:
        return None
    finally:
        sock.close()


def _netns_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------
def _flags_for(net: libvirt.virNetwork) -> int:
    """net-update applies to the persistent config, and to the running network when it runs."""
    flags = 0
    if net.isPersistent():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    if net.isActive():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    return flags


class Networks:
    """The virtual networks of one host."""

    def __init__(self, host):
        self.host = host

    @property
    def conn(self) -> libvirt.virConnect:
        """Looked up at each use: after a daemon restart the host reconnects."""
        return self.host.conn

    # -- reading ---------------------------------------------------------------------------
    def _lookup(self, name: str) -> libvirt.virNetwork:
        return lookups.network(self.conn, name)

    def _config(self, net: libvirt.virNetwork) -> etree._Element:
        """The persistent definition when there is one, else the live one."""
        with libvirt_errors(f"reading network {net.name()}"):
            return X.parse(lookups.network_definition(net))

    def exists(self, name: str) -> bool:
        try:
            self.conn.networkLookupByName(name)
            return True
        except libvirt.libvirtError:
            return False

    def list(self, include_inactive: bool = True) -> list[NetworkInfo]:
        with libvirt_errors("listing networks"):
            return [NetworkInfo(**row) for row in rows.network_rows(self.conn, include_inactive)]

    def info(self, name: str) -> NetworkInfo:
        with libvirt_errors(f"reading network {name}"):
            return self._info(self._lookup(name))

    def _info(self, net: libvirt.virNetwork) -> NetworkInfo:
        return NetworkInfo(**rows.network_row(net))

    def spec(self, name: str) -> NetworkSpec:
        return NetworkSpec.from_element(self._config(self._lookup(name)))

    def leases(self, name: str) -> list[Lease]:
        net = self._lookup(name)
        if not net.isActive():
            raise VirtopsError(f"network: {name} is not running, so it has no leases; start it"
                               f"{command(f'net start {name}', wrap=' with {}', elsewhere=' first')}.")
        with libvirt_errors(f"reading the leases of {name}"):
            return [Lease(mac=l["mac"], ip=l["ipaddr"], prefix=l["prefix"], hostname=l.get("hostname") or None,
                          expiry_time=l["expirytime"], type="ipv6" if l["type"] == libvirt.VIR_IP_ADDR_TYPE_IPV6 else "ipv4",
                          client_id=l.get("clientid") or None, iface=l.get("iface"))
                    for l in net.DHCPLeases()]

    def dumpxml(self, name: str, inactive: bool = False) -> str:
        """Exactly what libvirt gives (virsh net-dumpxml)."""
        net = self._lookup(name)
        with libvirt_errors(f"reading the XML of {name}"):
            return lookups.network_definition(net) if inactive else net.XMLDesc(0)

    def guests_using(self, name: str) -> list[tuple[str, bool]]:
        """(domain, running) of every guest, running or defined, with a NIC on the network."""
        from virtops.ops.rows import domains_with_xml

        users = []
        for dom_name, running, node in domains_with_xml(self.conn):
            uses = _nics_on(node, name)
            if not uses and running:
                uses = _nics_on(self._live_domain_xml(dom_name), name)  # a NIC hot-plugged live only
            if uses:
                users.append((dom_name, running))
        return users

    def _live_domain_xml(self, dom_name: str) -> etree._Element:
        try:
            return X.parse(self.conn.lookupByName(dom_name).XMLDesc(0))
        except libvirt.libvirtError:
            return X.element("domain")

    def running_nics(self, name: str) -> list[tuple[str, str, str]]:
        """(domain, mac, model) of every NIC on the network in a running guest (live XML)."""
        nics = []
        for dom in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                node = X.parse(dom.XMLDesc(0))
            except libvirt.libvirtError:
                continue
            for nic in _nics_on(node, name):
                nics.append((dom.name(), nic.mac, nic.model or "virtio"))
        return nics

    # -- validation against the host -------------------------------------------------------
    def check_against_host(self, spec: NetworkSpec, replacing: tuple[str, ...] = (),
                           facts: HostFacts | None = None) -> NetworkSpec:
        """Refuse what collides with other networks or the host; fill in the bridge name.
        `replacing`: networks the new definition replaces (edit, define --replace), not conflicts."""
        facts = facts if facts is not None else read_host_facts(self.conn)
        nodes = lookups.still_there([n for n in self.conn.listAllNetworks() if n.name() not in replacing],
                                    lambda n: X.parse(n.XMLDesc(0)))
        others = [NetworkSpec.from_element(node) for node in nodes]
        own_bridges = {s.bridge for s in self._specs(replacing)}
        if spec.mode == "bridge":
            self._check_host_bridge(spec.bridge, facts)
            return spec
        self._check_overlaps(spec, [NetworkSpec.from_element(node, every_address=True) for node in nodes], facts,
                             own_bridges)
        # --dev of nat and route; the devices of vepa, passthrough and hostdev are libvirt's to check at start.
        if spec.dev is not None and spec.mode in MODES_WITH_DEV and facts.readable and spec.dev not in facts.links:
            raise InvalidInput("dev", _no_such_device(spec.dev, facts.links))
        bridge = spec.bridge or next_free_bridge(others, facts)
        in_use = {o.bridge: o.name for o in others if o.bridge}
        if bridge in in_use:
            raise InvalidInput("bridge", f"{bridge} is already the bridge of network {in_use[bridge]}; "
                                         f"give another name or leave {term('bridge')} out for "
                                         f"{next_free_bridge(others, facts)}.")
        if bridge in facts.links and bridge not in own_bridges:
            raise InvalidInput("bridge", f"the host already has an interface {bridge}; "
                                         f"give another name or leave {term('bridge')} out for "
                                         f"{next_free_bridge(others, facts)}.")
        return spec.model_copy(update={"bridge": bridge})

    def _specs(self, names: tuple[str, ...]) -> list[NetworkSpec]:
        return [NetworkSpec.from_element(X.parse(self._lookup(n).XMLDesc(0))) for n in names if self.exists(n)]

    def _check_host_bridge(self, bridge: str, facts: HostFacts) -> None:
        if not facts.readable:
            return
        if bridge not in facts.links:
            bridges = [n for n, kind in facts.links.items() if kind == "bridge"]
            raise InvalidInput("bridge", f"the host has no interface {bridge!r}; give an existing host bridge"
                                         f"{' such as ' + ', '.join(sorted(bridges)) if bridges else ' (create one first)'}.")
        if facts.links[bridge] != "bridge":
            raise InvalidInput("bridge", f"{bridge} is a {facts.links[bridge] or 'plain'} interface, not a bridge; "
                                         f"give a host bridge (mode bridge) or use {term('dev')} with mode nat or route.")

    def _check_overlaps(self, spec: NetworkSpec, others: list[NetworkSpec], facts: HostFacts,
                        own_bridges: set[str | None]) -> None:
        for where, field_name, mine in _own_subnets(spec):
            with located(*where):
                self._check_overlap(field_name, mine, others, facts, own_bridges)

    def _check_overlap(self, field_name: str, mine: ipaddress._BaseNetwork, others: list[NetworkSpec],
                       facts: HostFacts, own_bridges: set[str | None]) -> None:
        """`others` in the addresses: form: every address of every other network counts."""
        for other in others:
            for theirs in (a.interface.network for a in other.addresses):
                if _overlap(mine, theirs):
                    raise InvalidInput(field_name, f"{mine} overlaps {theirs} of network {other.name}; "
                                                   "choose a subnet no other network uses.")
        for dev, net, address in facts.addresses:
            if dev not in own_bridges and _overlap(mine, net):
                raise InvalidInput(field_name, f"{mine} overlaps the host's address {address}/{net.prefixlen} on {dev}; "
                                               "choose a subnet the host does not use.")
        for dev, net in facts.routes:
            if dev not in own_bridges and _overlap(mine, net):
                raise InvalidInput(field_name, f"{mine} overlaps the host's route to {net} via {dev}; "
                                               "choose a subnet the host does not route.")

    # -- create, start, stop, autostart, delete -------------------------------------------
    def plan_create(self, name: str, **options) -> NetworkSpec:
        """The spec `create` would define: defaults filled in, every rule checked; nothing changes."""
        spec = build_spec(name, **options)
        if self.exists(name):
            raise InvalidInput("name", f"a network named {name!r} already exists; choose another name or delete it first.")
        return self.check_against_host(spec)

    def create_from(self, request: NetworkRequest, start: bool = True, autostart: bool = True) -> NetworkInfo:
        """`create` of a NetworkRequest, the model every face builds (the CLI, the REST API, a spec)."""
        return self.create(request.name, start=start, autostart=autostart, **request.build_options())

    @locks_host("net create")
    def create(self, name: str, start: bool = True, autostart: bool = True, **options) -> NetworkInfo:
        """Define, start and mark autostart as one operation; on failure the network is removed again.
        A run killed midway leaves a record (base/leftovers.py): this one removes that run's network
        first, so running the same command again finishes the job."""
        key = f"network/{name}"
        leftovers.clean_up_after_dead_run(self.host.uri, key, lambda made: self._remove_left_by_dead_run(name, made))
        spec = self.plan_create(name, **options)
        spec = spec if spec.uuid else spec.model_copy(update={"uuid": str(uuid_module.uuid4())})
        with leftovers.recorded_undo(self.host.uri, key, {"uuid": spec.uuid}) as undo:
            # Each inverse is registered before its step and looks the network up again: a daemon
            # that restarts mid-call may have done the step without answering.
            undo.add(lambda: owned.undefine_own(self.conn, "network", spec.uuid), f"defined network {name}")
            with libvirt_errors(f"defining network {name}"):
                net = self.conn.networkDefineXML(spec.to_xml())
            if start:
                undo.add(lambda: owned.stop_own(self.conn, "network", spec.uuid), f"started network {name}")
                with libvirt_errors(f"starting network {name}"):
                    net.create()
            if autostart:
                with libvirt_errors(f"marking network {name} autostart"):
                    net.setAutostart(1)
        return self.info(name)

    def _remove_left_by_dead_run(self, name: str, made: dict) -> None:
        """The network a killed `net create` made (its recorded UUID), unless guests took it up since."""
        net = owned.own(self.conn, "network", str(made.get("uuid")))
        if net is None:
            return
        users = self.guests_using(net.name())
        if users:
            raise VirtopsError(f"network: {net.name()} was left half-made by a killed `net create` and "
                               f"{_guest_list(users)} use it now; finish it by hand"
                               f"{by_face(' (`virtops net start`, `virtops net autostart`)')} instead.")
        with libvirt_errors(f"removing network {name}, left half-made by a killed run"):
            owned.undefine_own(self.conn, "network", net.UUIDString())

    def start(self, name: str) -> NetworkInfo:
        """Start a network; running guests with NICs on it (it was stopped under them with force)
        are re-plugged into its new bridge, so they get a lease again."""
        net = self._lookup(name)
        if net.isActive():
            raise VirtopsError(f"network: {name} is already running.")
        with libvirt_errors(f"starting network {name}"):
            net.create()
        self.replug_running_guests(name)
        return self.info(name)

    @locks_host("net stop")
    def stop(self, name: str, force: bool = False) -> NetworkInfo:
        """Stop a network. Refused while running guests have NICs on it, unless force."""
        net = self._lookup(name)
        if not net.isActive():
            raise VirtopsError(f"network: {name} is not running.")
        self.refuse_cutting_off(name, "stopping it", force)
        with libvirt_errors(f"stopping network {name}"):
            net.destroy()
        return self.info(name) if self.exists(name) else NetworkInfo(
            name=name, uuid="", active=False, autostart=False, persistent=False, mode="-")

    def set_autostart(self, name: str, enabled: bool = True) -> NetworkInfo:
        net = self._lookup(name)
        if not net.isPersistent():
            raise VirtopsError(f"network: {name} is transient (not defined), so it cannot start with the host; "
                               f"define it first{command('net define', wrap=' with {}', elsewhere='')}.")
        with libvirt_errors(f"setting autostart of {name}"):
            net.setAutostart(1 if enabled else 0)
        return self.info(name)

    @locks_host("net delete")
    def delete(self, name: str, force: bool = False, keep_running: bool = False) -> list[str]:
        """Stop and undefine the network. Refused while guests have a NIC on it, unless force;
        returns the guests that were using it. keep_running: undefine only (virsh net-undefine)."""
        net = self._lookup(name)
        users = self.guests_using(name)
        if users and not force:
            loss = ("leaves the defined ones without their network at their next start" if keep_running else
                    "cuts the running ones off and leaves the others unable to start")
            raise NeedsOption(f"network: {name} is used by {_guest_list(users)}; {'undefining' if keep_running else 'deleting'} "
                              f"it {loss}; detach their NICs first or give {term('force', True)} to go ahead anyway.")
        with libvirt_errors(f"deleting network {name}"):
            if net.isActive() and not keep_running:
                net.destroy()
            if net.isPersistent():
                net.undefine()
        return [g for g, _ in users]

    # -- define from a file (restore a backup) ---------------------------------------------
    @locks_host("net define")
    def define(self, xml_text: str, replace: bool = False, start: bool = False, force: bool = False) -> NetworkInfo:
        """Define a network from XML; with replace, in place of the network(s) with its name or UUID.
        Replacing a running network restarts it: refused while running guests have NICs on it,
        unless force, and then their NICs are re-plugged into the new bridge."""
        node, colliding = self.check_define(xml_text, replace)
        name = NetworkXml(node).name
        for other in colliding:
            self.refuse_cutting_off(other, "replacing it restarts it and", force, "virtops then re-plugs their NICs")
        saved = [(n, self._lookup(n)) for n in colliding]
        saved_state = [(n, lookups.network_definition(net), bool(net.isActive()), bool(net.autostart()))
                       for n, net in saved]
        with undo_on_failure() as undo:
            for n, old_xml, was_active, was_auto in saved_state:
                self.delete(n, force=True)
                undo.add(lambda x=old_xml, a=was_active, s=was_auto: self._restore(x, a, s), f"deleted network {n}")
            with libvirt_errors(f"defining network {name}"):
                net = self.conn.networkDefineXML(etree.tostring(node).decode())
            undo.add(net.undefine, f"defined network {name}")
            # The replacement takes over the running and autostart state of what it replaces.
            if start or any(active for _, _, active, _ in saved_state):
                with libvirt_errors(f"starting network {name}"):
                    net.create()
                undo.add(net.destroy, f"started network {name}")
            if any(auto for _, _, _, auto in saved_state):
                net.setAutostart(1)
        if net.isActive():
            self.replug_running_guests(name)
        return self.info(name)

    def check_define(self, xml_text: str, replace: bool = False) -> tuple[etree._Element, list[str]]:
        """What define refuses before any change (the plan of a spec's xml: asks the same); the
        parsed definition and the networks it replaces."""
        node = _parse_network_file(xml_text)
        name, uuid = NetworkXml(node).name, NetworkXml(node).uuid
        colliding = self._collisions(name, uuid)
        if colliding and not replace:
            raise VirtopsError(f"network: the file's {_describe_collision(colliding, name, uuid)}; "
                               f"pass {term('replace', True)} to replace it, or change the name and UUID in the file.")
        spec = NetworkSpec.from_element(node, every_address=True)
        try:
            self.check_against_host(spec, replacing=tuple(colliding))
        except InvalidInput as err:
            err.location = ()  # the file has no addresses: list to point into
            raise
        return node, colliding

    def planned_definition(self, name: str, **options) -> str:
        """The XML the network NAME gets from these options (build_spec's): a new definition, or
        the host's own with them set (what they do not say stays); every rule checked."""
        if not self.exists(name):
            return X.to_string(self.plan_create(name, **options).to_element())
        old_node = self._config(self._lookup(name))
        old = NetworkSpec.from_element(old_node, every_address=True)
        options = {**options, "bridge": options.get("bridge") or old.bridge}
        spec = build_spec(name, **options, uuid=old.uuid, kept=old)
        return X.to_string(merge_into(old_node, self.check_against_host(spec, replacing=(name,))))

    def _collisions(self, name: str, uuid: str | None) -> list[str]:
        names = [name] if self.exists(name) else []
        if uuid:
            try:
                other = self.conn.networkLookupByUUIDString(uuid).name()
                if other not in names:
                    names.append(other)
            except libvirt.libvirtError:
                pass
        return names

    def _restore(self, xml: str, active: bool, autostart: bool) -> None:
        net = self.conn.networkDefineXML(xml)
        if active and not net.isActive():
            net.create()
        net.setAutostart(1 if autostart else 0)

    # -- static DHCP hosts (net-update) ----------------------------------------------------
    @locks_host("net host-add")
    def host_add(self, name: str, mac: str, ip: str, hostname: str | None = None) -> DhcpHost:
        net = self._lookup(name)
        spec = NetworkSpec.from_element(self._config(net))
        entry = self._checked_host(net, spec, DhcpHost(mac=mac, ip=ip, name=hostname))
        self._update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, entry.to_element(), f"adding host {entry.mac}")
        return entry

    def _checked_host(self, net: libvirt.virNetwork, spec: NetworkSpec, entry: DhcpHost) -> DhcpHost:
        if not spec.subnet:
            raise VirtopsError(f"network: {spec.name} has no IPv4 subnet, so it cannot hand out fixed addresses.")
        subnet = ipaddress.ip_network(spec.subnet)
        checked = check_dhcp_host(entry, subnet, ipaddress.ip_address(spec.gateway),
                                  [*spec.hosts, *_hosts_by_name_only(self._config(net)), entry])
        if net.isActive():
            for lease in net.DHCPLeases():
                if lease["ipaddr"] == checked.ip and lease["mac"].lower() != checked.mac:
                    raise InvalidInput("ip", f"{checked.ip} is leased to {lease['mac']} right now; choose another address "
                                             f"in {usable_hosts(subnet)}.")
        return checked

    @locks_host("net host-remove")
    def host_remove(self, name: str, mac: str | None = None, host_name: str | None = None, ip: str | None = None,
                    duid: str | None = None) -> AddressHost:
        """Remove the static host that exactly one of its MAC, host name, IP or DUID picks (HostKey's
        fields; the host's name is host_name here, beside the network's), under whichever address of
        the network it is: live and persistent."""
        key = {field_name: value for field_name, value in zip(HOST_KEYS, (mac, host_name, ip, duid))
               if value is not None}
        if not key:
            raise InvalidInput("mac", f"give one of {_listed(HOST_KEYS, 'or')} to pick the host entry to remove.")
        if len(key) > 1:
            raise InvalidInput(next(iter(key)), f"give only one of {_listed(key, 'and')}: each picks the host entry "
                                                "to remove on its own.")
        return self._remove_host(name, key)

    def _remove_host(self, name: str, key: dict[str, str]) -> AddressHost:
        """The host entry with every value of `key` leaves the network. net-update deletes the entry as
        libvirt holds it, under its own <ip>: the index -1 finds the first address with DHCP only."""
        net = self._lookup(name)
        held = pick_host(name, held_hosts(self._config(net)), key)
        node = copy.deepcopy(held.node)
        node.tail = None
        entry = held.entry
        self._update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, node, f"removing host {host_text(entry)}",
                     parent_index=held.index)
        return entry

    @locks_host("net update")
    def update(self, name: str, command: str, section: str, xml_text: str) -> str:
        """virsh net-update for the sections people use: ip-dhcp-host and ip-dhcp-range. A host to
        delete is the entry with every attribute the fragment gives (virsh's rule), by any of them."""
        node = _parse_fragment(xml_text)
        if section == "ip-dhcp-host":
            if command == "delete":
                return f"removed {host_text(self._remove_host(name, _fragment_key(node)))}"
            entry = DhcpHost.from_element(node)
            if command == "add":
                return f"added {self.host_add(name, entry.mac, entry.ip, entry.name).mac}"
            old = self.host_remove(name, mac=entry.mac)
            try:
                return f"modified {self.host_add(name, entry.mac, entry.ip, entry.name).mac}"
            except VirtopsError:
                self.host_add(name, old.mac, old.ip, old.name)  # put the old entry back
                raise
        return self._update_range(name, command, node)

    def _update_range(self, name: str, command: str, node: etree._Element) -> str:
        net = self._lookup(name)
        spec = NetworkSpec.from_element(self._config(net))
        if not spec.subnet:
            raise VirtopsError(f"network: {name} has no IPv4 subnet, so it has no DHCP range.")
        start, end = parse_dhcp_range(f"{node.get('start')}-{node.get('end')}", ipaddress.ip_network(spec.subnet),
                                      ipaddress.ip_address(spec.gateway))
        rng = X.element("range", start=str(start), end=str(end))
        commands = {"add": libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, "delete": libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE}
        if command not in commands:
            raise InvalidInput("command", "libvirt cannot modify a DHCP range in place; use delete, then add.")
        self._update(net, commands[command], rng, f"{command} DHCP range", libvirt.VIR_NETWORK_SECTION_IP_DHCP_RANGE)
        return f"{command} range {start}-{end}"

    def _update(self, net: libvirt.virNetwork, command: int, node: etree._Element, doing: str,
                section: int = libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, parent_index: int = -1) -> None:
        """parent_index: the <ip> whose <dhcp> it is; -1: libvirt's pick, the first address with DHCP."""
        with libvirt_errors(f"{doing} on network {net.name()}"):
            net.update(command, section, parent_index, etree.tostring(node).decode(), _flags_for(net))

    # -- edit: in place when libvirt can, by an announced procedure when it cannot ---------
    def plan_edit(self, name: str, subnet: str | None = None, gateway: str | None = None,
                  dhcp: str | bool | None = None, mode: str | None = None, dev: str | None = None,
                  domain: str | None = None, mtu: int | None = None, ipv6_guests: bool | None = None,
                  nat_ipv6: bool | None = None, ipv6: str | None = None) -> EditPlan:
        """None leaves a field as the network has it; an empty ipv6 removes the IPv6 address."""
        net = self._lookup(name)
        old_node = self._config(net)
        old = NetworkSpec.from_element(old_node)
        if mode is not None and (mode == "bridge") != (old.mode == "bridge"):
            raise InvalidInput("mode", f"a network becomes or stops being a bridge of the host only by being made "
                                       f"again; delete network {name} and create it with mode {mode}.")
        if subnet is not None and subnet != old.subnet:
            _refuse_ipv4_leftovers(old_node, parse_ipv4_subnet(subnet))
        new = self._edited_spec(old, subnet, gateway, dhcp, mode, dev, domain, mtu, ipv6_guests, nat_ipv6, ipv6)
        _refuse_ipv6_leftovers(old_node, old, new)
        new = self.check_against_host(new, replacing=(name,))
        changed = _changed_fields(old, new) + _ipv6_dhcp_going(old_node, old, new)
        if not changed:
            return EditPlan(network=name, live=True, steps=[], changed=[])
        if set(changed) <= {"dhcp range"} and old.has_dhcp and new.has_dhcp:
            return EditPlan(network=name, live=True, changed=changed, new_xml=X.to_string(merge_into(old_node, new)),
                            steps=[f"update the DHCP range of {name} from {old.dhcp_start}-{old.dhcp_end} to "
                                   f"{new.dhcp_start}-{new.dhcp_end} in place (net-update; no restart)"])
        return self._restart_plan(net, old_node, new, changed)

    def _edited_spec(self, old: NetworkSpec, subnet, gateway, dhcp, mode, dev, domain, mtu, ipv6_guests=None,
                     nat_ipv6=None, ipv6=None) -> NetworkSpec:
        new_mode = mode or old.mode
        new_subnet = subnet or old.subnet
        moved = subnet is not None and subnet != old.subnet
        if gateway is None and not moved:
            gateway = old.gateway
        if dhcp is None and not moved:
            dhcp = f"{old.dhcp_start}-{old.dhcp_end}" if old.has_dhcp else False
        elif dhcp is None and not old.has_dhcp:
            dhcp = False
        if dev is None and new_mode in MODES_WITH_DEV:
            dev = old.dev
        elif dev == "":
            dev = None
        # As with dev, an empty domain and an MTU of 0 mean "remove it" (the spec face needs that).
        domain = old.domain if domain is None else (domain or None)
        mtu = old.mtu if mtu is None else (mtu or None)
        ipv6 = old.ipv6 if ipv6 is None else (ipv6 or None)  # "" removes it, as with the domain
        if nat_ipv6 is None:  # kept, unless the mode leaves NAT (libvirt allows <nat> in mode nat only)
            nat_ipv6 = old.nat_ipv6 and new_mode == "nat" and ipv6 is not None  # nor without an IPv6 address
        new = build_spec(old.name, subnet=new_subnet, gateway=gateway, dhcp=dhcp, mode=new_mode, dev=dev,
                         bridge=old.bridge, domain=domain, ipv6=ipv6, mtu=mtu, uuid=old.uuid, hosts=old.hosts,
                         ipv6_guests=old.ipv6_guests if ipv6_guests is None else ipv6_guests, nat_ipv6=nat_ipv6,
                         kept=old)
        if new.ipv6 == old.ipv6:  # the host's address on it stays, wherever the network put it
            new = new.model_copy(update={"ipv6_gateway": old.ipv6_gateway})
        return new

    def _restart_plan(self, net: libvirt.virNetwork, old_node: etree._Element, new: NetworkSpec,
                      changed: list[str]) -> EditPlan:
        name = net.name()
        nics = self.running_nics(name) if net.isActive() else []
        steps = [f"redefine {name}: {'; '.join(changed)}"]
        if net.isActive():
            steps.append(f"restart {name} (stop, start): guests on it lose connectivity for a moment")
        steps += [f"re-attach NIC {mac} ({model}) of running guest {dom} (detach, attach; same MAC and model) "
                  "so it renews its lease" for dom, mac, model in nics]
        return EditPlan(network=name, live=False, steps=steps, guests=nics, changed=changed,
                        new_xml=X.to_string(merge_into(old_node, new)))

    @locks_host("net edit")
    def edit(self, name: str, yes: bool = False, **changes) -> tuple[EditPlan, bool]:
        """Returns (plan, done). Without yes, a plan that needs a restart is only returned."""
        plan = self.plan_edit(name, **changes)
        if not plan.steps:
            return plan, True
        if plan.live:
            self._apply_live(name, plan)
            return plan, True
        if not yes:
            return plan, False
        self.apply_restart_plan(plan)
        return plan, True

    def _apply_live(self, name: str, plan: EditPlan) -> None:
        net = self._lookup(name)
        old = NetworkSpec.from_element(self._config(net))
        new = NetworkSpec.from_xml(plan.new_xml)
        old_range = X.element("range", start=old.dhcp_start, end=old.dhcp_end)
        new_range = X.element("range", start=new.dhcp_start, end=new.dhcp_end)
        section = libvirt.VIR_NETWORK_SECTION_IP_DHCP_RANGE
        self._update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, new_range, "adding the new DHCP range", section)
        try:
            self._update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, old_range, "removing the old DHCP range", section)
        except VirtopsError:
            self._update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, new_range, "undoing the new DHCP range", section)
            raise

    @locks_host("net edit")
    def apply_restart_plan(self, plan: EditPlan) -> None:
        """Redefine, restart, re-attach; on failure put the old definition back and reconnect guests."""
        net = self._lookup(plan.network)
        old_xml = lookups.network_definition(net)
        was_active = bool(net.isActive())
        try:
            with libvirt_errors(f"redefining network {plan.network}"):
                net = self.conn.networkDefineXML(plan.new_xml)
            if was_active:
                self._restart(net)
                for dom, mac, model in plan.guests:
                    self.reattach_nic(dom, mac, model, plan.network)
        except Exception:
            self._rollback(plan, old_xml, was_active)
            raise

    def _restart(self, net: libvirt.virNetwork) -> None:
        with libvirt_errors(f"restarting network {net.name()}"):
            if net.isActive():
                net.destroy()
            net.create()

    def _rollback(self, plan: EditPlan, old_xml: str, was_active: bool) -> None:
        try:
            net = self.conn.networkDefineXML(old_xml)
            if was_active:
                self._restart(net)
                for dom, mac, model in plan.guests:
                    self.reattach_nic(dom, mac, model, plan.network)
        except (libvirt.libvirtError, VirtopsError):
            pass  # the original error is the one to report

    def reattach_nic(self, dom_name: str, mac: str, model: str, network: str) -> None:
        """Unplug and plug a running guest's NIC (same MAC and model): its tap joins the restarted
        bridge and the guest sees a new link, so it asks for a new lease."""
        from virtops.ops.domain import NicSpec

        with libvirt_errors(f"re-attaching NIC {mac} of {dom_name}"):
            dom = self.conn.lookupByName(dom_name)
            nic_xml = X.to_string(NicSpec(network=network, mac=mac, model=model).to_element())
            if _has_mac(dom, mac):
                dom.detachDeviceFlags(nic_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                _wait_until(lambda: not _has_mac(dom, mac), DETACH_TIMEOUT_S,
                            f"guest {dom_name} did not release NIC {mac} within {DETACH_TIMEOUT_S:.0f} s")
            dom.attachDeviceFlags(nic_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    # -- guards: what running guests would lose --------------------------------------------
    def impact(self, name: str, action: str) -> Impact:
        """What stopping or deleting network NAME costs, before it is done: the running guests cut
        off, on the facts `stop` and `delete` refuse on, and the option they would then need."""
        if action == "stop":
            nics = self._cut_off_by_stopping(name)
            cost = (f"running guests {_nic_list(nics)} lose their connection: their NICs leave the bridge of {name} "
                    "until it starts again, which re-plugs them." if nics else
                    f"no running guest has a NIC on {name}; while it is stopped it gives no leases and forwards nothing.")
            return Impact(action=action, subject=f"network {name}", guests=sorted({dom for dom, _, _ in nics}),
                          cost=cost, option="force" if nics else None)
        if action == "delete":
            users = self.guests_using(name)
            cost = (f"{_guest_list(users)} use {name}: the running ones lose their connection and none can start "
                    "with that NIC again." if users else
                    f"no guest uses {name}; its definition goes (its saved XML defines it again).")
            return Impact(action=action, subject=f"network {name}", guests=[g for g, running in users if running],
                          cost=cost, option="force" if users else None)
        if action == "restart":  # an edit libvirt cannot make in place (apply_restart_plan)
            nics = self._cut_off_by_stopping(name)
            cost = (f"running guests {_nic_list(nics)} lose their connection for a moment: {name} stops and starts "
                    "again, then their NICs are re-attached (same MAC and model) and get a lease again." if nics else
                    f"no running guest has a NIC on {name}; it gives no leases and forwards nothing while it restarts."
                    if self._lookup(name).isActive() else f"{name} is not running: only its definition changes.")
            return Impact(action=action, subject=f"network {name}", guests=sorted({dom for dom, _, _ in nics}),
                          cost=cost)
        raise InvalidInput("action", f"{action!r} is no action on a network with a cost; give stop, delete or "
                                     "restart.")

    def _cut_off_by_stopping(self, name: str) -> list[tuple[str, str, str]]:
        return self.running_nics(name) if self._lookup(name).isActive() else []

    def refuse_cutting_off(self, name: str, doing: str, force: bool,
                           after: str = "when virtops starts it again, it re-plugs their NICs") -> None:
        """Refuse, unless force, what takes network NAME away from running guests' NICs for a while:
        their taps leave its bridge, and stay off the bridge once it runs again unless re-plugged."""
        nics = self._cut_off_by_stopping(name)
        if nics and not force:
            raise NeedsOption(f"network: {name} carries NICs of running guests {_nic_list(nics)}; {doing} "
                              f"unplugs them from its bridge, so they lose their connection; give {term('force', True)} to "
                              f"go ahead anyway ({after} and they get a lease again).")

    def replug_running_guests(self, name: str) -> list[tuple[str, str, str]]:
        """Re-plug every running guest's NIC on network NAME (just started): the taps of a stopped
        network's guests are no longer on its bridge. Returns the NICs (domain, mac, model)."""
        nics = self.running_nics(name)
        for dom, mac, model in nics:
            self.reattach_nic(dom, mac, model, name)
        return nics

    # -- libvirt's stock default network ---------------------------------------------------
    @locks_host("net restore-default")
    def restore_default(self, force: bool = False) -> list[str]:
        """Make `default` what libvirt ships (NAT, virbr0, 192.168.122.1/24, DHCP .2-.254), running and
        autostart. Returns what was changed; empty when it already was. A repair restarts it: refused
        while running guests have NICs on it, unless force (they are then re-plugged)."""
        stock = build_spec("default", subnet=STOCK_DEFAULT["subnet"], gateway=STOCK_DEFAULT["gateway"],
                           dhcp=f"{STOCK_DEFAULT['dhcp_start']}-{STOCK_DEFAULT['dhcp_end']}", mode="nat",
                           bridge=STOCK_DEFAULT["bridge"])
        if not self.exists("default"):
            self.create("default", subnet=stock.subnet, gateway=stock.gateway, dhcp=f"{stock.dhcp_start}-{stock.dhcp_end}",
                        bridge=stock.bridge)
            return ["created network default (NAT, virbr0, 192.168.122.1/24, DHCP 192.168.122.2-192.168.122.254), "
                    "started it and marked it autostart"]
        changes = self._repair_default(stock, force)
        net = self._lookup("default")
        if not net.isActive():
            with libvirt_errors("starting network default"):
                net.create()
            changes.append("started it")
        if not net.autostart():
            net.setAutostart(1)
            changes.append("marked it autostart")
        return changes

    def _repair_default(self, stock: NetworkSpec, force: bool = False) -> list[str]:
        net = self._lookup("default")
        current = NetworkSpec.from_element(self._config(net))
        wanted = stock.model_copy(update={"uuid": current.uuid, "hosts": current.hosts, "domain": current.domain,
                                          "ipv6": current.ipv6, "ipv6_gateway": current.ipv6_gateway, "mtu": current.mtu,
                                          "ipv6_guests": current.ipv6_guests, "nat_ipv6": current.nat_ipv6})
        wanted = self.check_against_host(wanted, replacing=("default",))
        changed = _changed_fields(current, wanted)
        if not changed:
            return []
        plan = self._restart_plan(net, self._config(net), wanted, changed)
        if net.isActive():
            self.refuse_cutting_off("default", "repairing it restarts it and", force, "virtops then re-plugs their NICs")
        self.apply_restart_plan(plan)
        return [f"redefined it ({'; '.join(changed)})"] + [s for s in plan.steps[1:]]


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def _overlap(a: ipaddress._BaseNetwork, b: ipaddress._BaseNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


def _own_subnets(spec: NetworkSpec) -> list[tuple[tuple, str, ipaddress._BaseNetwork]]:
    """(location, field, subnet) of each address of a network, in the form the spec gives them."""
    if spec.addresses:
        return [(("addresses", k), "address", a.interface.network) for k, a in enumerate(spec.addresses)]
    return [((), name, ipaddress.ip_network(text)) for name, text in (("subnet", spec.subnet), ("ipv6", spec.ipv6))
            if text]


def next_free_bridge(others: list[NetworkSpec], facts: HostFacts) -> str:
    taken = {o.bridge for o in others} | set(facts.links)
    n = 0
    while f"virbr{n}" in taken:
        n += 1
    return f"virbr{n}"


def _no_such_device(dev: str, links: dict[str, str]) -> str:
    # Suggest devices traffic can leave through: not bridges (libvirt's own) or guests' taps.
    names = sorted(n for n, kind in links.items() if n != "lo" and kind not in ("bridge", "tun"))
    if not names:
        return (f"the host has no interface {dev!r}, nor any other it could forward through; "
                f"leave {term('dev')} out to forward through whichever route the host has.")
    return f"the host has no interface {dev!r}; give one of {', '.join(names)} or leave {term('dev')} out to forward " \
           "through any physical device."


def _nics_on(domain: etree._Element, network: str) -> list[NicXml]:
    return [nic for nic in DomainXml(domain).nics if nic.type == "network" and nic.source == network]


def _has_mac(dom: libvirt.virDomain, mac: str) -> bool:
    node = X.parse(dom.XMLDesc(0))
    return any(nic.mac == mac.lower() for nic in DomainXml(node).nics)


def _wait_until(condition: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise VirtopsError(message + ".")
        time.sleep(0.2)


def _nic_list(nics: list[tuple[str, str, str]]) -> str:
    by_guest: dict[str, list[str]] = {}
    for dom, mac, _model in nics:
        by_guest.setdefault(dom, []).append(mac)
    return ", ".join(f"{dom} ({', '.join(macs)})" for dom, macs in sorted(by_guest.items()))


def _guest_list(users: list[tuple[str, bool]]) -> str:
    return ", ".join(f"{name} ({'running' if running else 'defined'})" for name, running in users)


def _changed_fields(old: NetworkSpec, new: NetworkSpec) -> list[str]:
    labels = {"mode": "mode", "dev": "forward device", "subnet": "subnet", "gateway": "gateway",
              "ipv6": "IPv6 subnet", "domain": "DNS domain", "mtu": "MTU", "bridge": "bridge"}
    changed = [f"{label} {getattr(old, key) or '-'} -> {getattr(new, key) or '-'}"
               for key, label in labels.items() if getattr(old, key) != getattr(new, key)]
    for key, label in (("ipv6_guests", "IPv6 between guests"), ("nat_ipv6", "NAT for IPv6")):
        if getattr(old, key) != getattr(new, key):
            changed.append(f"{label} {'on' if getattr(old, key) else 'off'} -> {'on' if getattr(new, key) else 'off'}")
    if (old.dhcp_start, old.dhcp_end) != (new.dhcp_start, new.dhcp_end):
        if old.has_dhcp and new.has_dhcp and old.subnet == new.subnet and old.gateway == new.gateway and not changed:
            return ["dhcp range"]
        changed.append(f"DHCP {old.dhcp_start or '-'}-{old.dhcp_end or '-'} -> {new.dhcp_start or 'off'}-{new.dhcp_end or ''}".rstrip("-"))
    return changed


def _parse_network_file(text: str) -> etree._Element:
    try:
        node = X.parse_strict(text)
    except etree.XMLSyntaxError as err:
        raise InvalidInput("file", f"it is not well-formed XML ({err.msg}); give a file written by `net dumpxml`.") from None
    if node.tag != "network":
        raise InvalidInput("file", f"its root element is <{node.tag}>, not <network>; give a file written by `net dumpxml`.")
    try:
        X.validate(node, "network")
    except ValueError as err:
        raise InvalidInput("file", f"libvirt's network schema rejects it ({str(err).split(': ', 1)[-1]}).") from None
    check_name(NetworkXml(node).name or "")
    return node


def _fragment_key(node: etree._Element) -> dict[str, str]:
    """A <host> fragment's attributes as HostKey's fields (id= is the DUID)."""
    values = DhcpHostXml(node).values("mac", "name", "ip", "id")
    key = {field_name: values[attribute] for field_name, attribute in zip(HOST_KEYS, ("mac", "name", "ip", "id"))
           if values[attribute] is not None}
    if not key:
        raise InvalidInput("xml", "the <host> gives none of mac, name, ip or id, so it picks no entry; give e.g. "
                                  "<host mac='52:54:00:00:00:01' ip='192.168.200.10'/>.")
    return key


def _parse_fragment(text: str) -> etree._Element:
    try:
        return X.parse_strict(text)
    except etree.XMLSyntaxError as err:
        raise InvalidInput("xml", f"it is not well-formed XML ({err.msg}); give e.g. <host mac='52:54:00:00:00:01' ip='192.168.200.10'/>.") from None


def _describe_collision(colliding: list[str], name: str, uuid: str | None) -> str:
    if name in colliding and len(colliding) == 1:
        return f"name {name!r} is already a network on this host"
    others = [n for n in colliding if n != name]
    return f"UUID {uuid} already belongs to network {others[0]!r}"
