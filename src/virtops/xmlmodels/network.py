"""Virtual network XML (<network>): forward mode, bridge, MTU, DNS domain, the IPv4 and the IPv6
<ip> with their DHCP ranges and static hosts, every <ip> as it is, and the two IPv6 flags."""
from __future__ import annotations

import ipaddress

from .fields import INT, MAC, ONOFF, YESNO, Child, Children, Field, XmlModel

MODES_WITH_NAT = ("nat",)  # the only mode whose <forward> may hold a <nat> element


class DhcpHostXml(XmlModel):
    """A static lease: <host mac='...' name='...' ip='...'/> inside <dhcp>; an IPv6 one names its
    client by DUID (id=) or by name only."""

    TAG = "host"
    mac = Field("@mac", MAC, carry="HostEntry.mac")
    id = Field("@id")
    name = Field("@name", carry="HostEntry.name")
    ip = Field("@ip", carry="HostEntry.ip")


class RangeXml(XmlModel):
    """A DHCP range: <range start='...' end='...'/>."""

    TAG = "range"
    start = Field("@start", carry="NetworkEntry.dhcp")
    end = Field("@end", carry="NetworkEntry.dhcp")


def _classful_prefix(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """libvirt's prefix when <ip> gives neither prefix= nor netmask=: /64 for IPv6, else the class's."""
    if address.version == 6:
        return 64
    first = int(address) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


class IpXml(XmlModel):
    """An <ip> of a network: the host's address on it, its prefix, DHCP."""

    TAG = "ip"
    ORDER = {"": ("tftp", "dhcp"), "dhcp": ("range", "host", "bootp")}

    def _prefix(self) -> int | None:
        """Written as prefix= or netmask= (older libvirt and virt-manager write netmask), or
        neither: then libvirt takes the classful default."""
        address = self.address_obj
        if address is None:
            return None
        try:
            if self.node.get("prefix"):
                return int(self.node.get("prefix"))
            if self.node.get("netmask"):
                return ipaddress.ip_network(f"0.0.0.0/{self.node.get('netmask')}").prefixlen
        except ValueError:
            return None
        return _classful_prefix(address)

    def _set_prefix(self, prefix: int | None) -> None:
        """In the spelling the element already uses; netmask= for a new IPv4 one, prefix= for IPv6."""
        if prefix is None:
            self.node.attrib.pop("prefix", None)
            self.node.attrib.pop("netmask", None)
            return
        use_netmask = "netmask" in self.node.attrib or ("prefix" not in self.node.attrib and self.version == 4)
        self.node.attrib.pop("prefix" if use_netmask else "netmask", None)
        if use_netmask:
            self.node.set("netmask", str(ipaddress.ip_network(f"0.0.0.0/{prefix}").netmask))
        else:
            self.node.set("prefix", str(prefix))

    family = Field("@family")
    address = Field("@address", carry="NetworkEntry.gateway")
    prefix = Field("@prefix", INT, get=_prefix, set=_set_prefix, carry="NetworkEntry.subnet")
    ranges = Children(RangeXml, "dhcp/range")
    hosts = Children(DhcpHostXml, "dhcp/host", key="mac", carry="NetworkEntry.hosts")

    @property
    def address_obj(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.node.get("address") or "")
        except ValueError:
            return None

    @property
    def version(self) -> int:
        address = self.address_obj
        if address is not None:
            return address.version
        return 6 if self.node.get("family") == "ipv6" else 4

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        """address/prefix, or None when the element gives no usable address."""
        prefix = self.prefix
        if prefix is None:
            return None
        try:
            return ipaddress.ip_interface(f"{self.address_obj}/{prefix}")
        except ValueError:
            return None


def _is_v4(ip: IpXml) -> bool:
    return ip.interface is not None and ip.version == 4


def _is_v6(ip: IpXml) -> bool:
    return ip.interface is not None and ip.version == 6


class NetworkXml(XmlModel):
    TAG = "network"
    ORDER = {"": ("name", "uuid", "title", "description", "metadata", "forward", "bridge", "mtu", "mac", "domain",
                  "dns", "ip", "route", "portgroup", "bandwidth", "virtualport", "vlan", "port"),
             "forward": ("driver", "nat", "pf", "interface", "address")}

    def _mode(self) -> str:
        """No <forward>: isolated; <forward> without mode: nat (libvirt's default)."""
        forward = self.node.find("forward")
        return "isolated" if forward is None else (forward.get("mode") or "nat")

    def _set_mode(self, mode: str) -> None:
        forward = self.node.find("forward")
        if mode == "isolated":
            if forward is not None:
                self.node.remove(forward)
            return
        forward = self.ensure(("forward",))
        forward.set("mode", mode)
        nat = forward.find("nat")
        if nat is not None and mode not in MODES_WITH_NAT:  # libvirt refuses <nat> in other modes
            forward.remove(nat)

    # <network ipv6='yes'>: IPv6 between the guests of a network that has no IPv6 address (libvirt
    # then gives its bridge the IPv6 firewall rules of one that has: guest to guest accepted,
    # nothing forwarded beyond it; without the flag such a network gets no IPv6 rules at all).
    ipv6_guests = Field("@ipv6", YESNO, carry="NetworkEntry.ipv6_guests")
    name = Field("name", carry="NetworkEntry.name")
    uuid = Field("uuid")
    mode = Field("forward/@mode", get=_mode, set=_set_mode, carry="NetworkEntry.mode")
    dev = Field("forward/@dev", carry="NetworkEntry.dev")
    # <nat ipv6='yes'>: masquerade the IPv6 addresses too (libvirt >= 6.5), not only route them.
    # libvirt allows <nat> in mode nat only; _set_mode removes it from the others.
    nat_ipv6 = Field("forward/nat/@ipv6", YESNO, carry="NetworkEntry.nat_ipv6")
    bridge = Field("bridge/@name", carry="NetworkEntry.bridge")
    stp = Field("bridge/@stp", ONOFF)
    delay = Field("bridge/@delay", INT)
    mtu = Field("mtu/@size", INT, carry="NetworkEntry.mtu", drop_element=True)
    domain = Field("domain/@name", carry="NetworkEntry.domain", drop_element=True)
    domain_local_only = Field("domain/@localOnly", YESNO)
    # The first IPv4 and the first IPv6 <ip> with an address: the ones virtops models. Others stay.
    ipv4 = Child(IpXml, "ip", where=_is_v4)
    ipv6 = Child(IpXml, "ip", where=_is_v6, create={"family": "ipv6"}, carry="NetworkEntry.ipv6")
    ips = Children(IpXml, "ip")  # every <ip>, as `net info` shows them

    def set_addresses(self, addresses: list[dict]) -> None:
        """Exactly these <ip> (IpXml's fields), in this order. One the network has already keeps
        how it spells its prefix (prefix= or netmask=); a new one says prefix=, libvirt's own
        spelling for both families."""
        spelled = {(ip.address, ip.prefix): {k: v for k, v in ip.node.attrib.items() if k in ("prefix", "netmask")}
                   for ip in self.ips}
        self.ips = []
        for values in addresses:
            ip = self.ips.add(family=values.get("family"), address=values["address"])
            # The spelling first (prefix= for a new one: _set_prefix then keeps it), then the values.
            ip.node.attrib.update(spelled.get((values["address"], values["prefix"]), {"prefix": "0"}))
            ip.update(**values)
