"""Real packets on a lab host with an uplink: test guests (TCG, transient) on NAT, routed and isolated
networks prove what each mode promises, from inside the guest and from the "outside" namespace.

Layout: lab netns eth0 198.51.100.2/24 <-> outside netns eth0 198.51.100.1/24. Guests run the busybox
test guest in shell mode, so they stay up while "outside" probes them and can be asked for a fresh
report (`vo-report`). Each guest boot costs ~15 s, so every boot carries several checks.
"""
from __future__ import annotations

import ipaddress
import subprocess
import sys
import time

import libvirt
import pytest

from helpers import run_cli
from virtops.ops.domain import DomainSpec, KernelBoot, NicSpec
from virtops.host import Host
from virtops.testguest.image import GuestReport, kernel_cmdline, parse_report

OUTSIDE = "198.51.100.1"
LAB_UPLINK = "198.51.100.2"
BOOT_TIMEOUT_S = 120

# Records the source address of every ICMP echo request that reaches "outside".
ICMP_SNIFFER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
while True:
    data, (source, _) = s.recvfrom(65535)
    header = (data[0] & 0x0F) * 4
    if data[header] == 8:
        print(source, flush=True)
"""


class Guest:
    """A transient test guest whose serial console we read (and type into) while it runs."""

    def __init__(self, conn: libvirt.virConnect, image, name: str, nics: list[NicSpec], ping: list[str] = ()):
        spec = DomainSpec(name=name, virt_type="qemu", memory_mib=192, nics=nics,
                          boot=KernelBoot(kernel=str(image.kernel), initrd=str(image.initrd),
                                          cmdline=kernel_cmdline("shell", ping=ping)))
        self.dom = conn.createXML(spec.to_xml(), libvirt.VIR_DOMAIN_START_PAUSED)
        self.stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        self.dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        self.dom.resume()
        self.text = ""

    def pump(self) -> None:
        while True:
            data = self.stream.recv(65536)
            if data in (-2, b"") or data is None:
                return
            self.text += data.decode(errors="replace")

    def report(self, since: int, accept, timeout_s: float = BOOT_TIMEOUT_S) -> GuestReport:
        """The newest complete report printed after text offset `since` for which accept(report) holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pump()
            try:
                report = parse_report(self.text[since:])
                if report.complete and accept(report):
                    return report
            except ValueError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"guest {self.dom.name()} printed no matching report in {timeout_s:.0f} s:\n{self.text[-3000:]}")

    def fresh_report(self) -> GuestReport:
        """Ask the guest's shell for a report now (pings included)."""
        self.pump()
        since = len(self.text)
        self.send("vo-report\n")
        return self.report(since, lambda r: True, timeout_s=60)

    def send(self, text: str) -> None:
        data = text.encode()
        while data:
            sent = self.stream.send(data)
            if sent > 0:
                data = data[sent:]
            else:
                time.sleep(0.05)

    def destroy(self) -> None:
        try:
            self.stream.abort()
        except libvirt.libvirtError:
            pass
        try:
            self.dom.destroy()
        except libvirt.libvirtError:
            pass


def has_lease(report: GuestReport) -> bool:
    return bool(report.nics) and all(n.ip for n in report.nics)


def address(report: GuestReport) -> ipaddress.IPv4Address:
    return ipaddress.ip_interface(report.nics[0].ip).ip


def outside(lab, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.outside_netns, *argv], capture_output=True, text=True,
                          timeout=60, check=check)


def outside_pings(lab, target: str) -> bool:
    return outside(lab, "ping", "-c", "2", "-W", "2", str(target)).returncode == 0


@pytest.fixture
def uphost(uplink_lab):
    host = Host(uplink_lab.uri)
    guests: list[Guest] = []
    routes: list[str] = []
    host.test_guests, host.outside_routes = guests, routes
    try:
        yield host
    finally:
        for guest in guests:
            guest.destroy()
        for subnet in routes:
            outside(uplink_lab, "ip", "route", "del", subnet)
        for net in host.conn.listAllNetworks():
            if net.name().startswith("p-"):
                net.destroy() if net.isActive() else None
                net.undefine()
        host.close()


def boot(host, image, name, nics, ping=()) -> Guest:
    guest = Guest(host.conn, image, name, nics, ping)
    host.test_guests.append(guest)
    return guest


def route_outside_to(lab, host, subnet: str) -> None:
    """Give "outside" a route to a guest subnet via the lab host's uplink address."""
    outside(lab, "ip", "route", "add", subnet, "via", LAB_UPLINK, check=True)
    host.outside_routes.append(subnet)


def test_nat_and_routed_leases_and_static_host(uplink_lab, uphost, guest_image):
    nets = uphost.networks
    nets.create("p-nat", subnet="10.61.0.0/24", mode="nat")
    nets.create("p-route", subnet="10.62.0.0/24", mode="route")
    nets.host_add("p-route", "52:54:00:62:00:50", "10.62.0.50", "fixed")
    # Even with a route to the NAT subnet, "outside" must not get in.
    route_outside_to(uplink_lab, uphost, "10.61.0.0/24")
    route_outside_to(uplink_lab, uphost, "10.62.0.0/24")
    sniffer = subprocess.Popen(["ip", "netns", "exec", uplink_lab.outside_netns, sys.executable, "-c", ICMP_SNIFFER],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nat_guest = boot(uphost, guest_image, "p-nat-guest", [NicSpec(network="p-nat", mac="52:54:00:61:00:01")], [OUTSIDE])
        routed_guest = boot(uphost, guest_image, "p-route-guest",
                            [NicSpec(network="p-route", mac="52:54:00:62:00:50")], [OUTSIDE])
        nat = nat_guest.report(0, lambda r: has_lease(r) and OUTSIDE in r.pings)
        routed = routed_guest.report(0, lambda r: has_lease(r) and OUTSIDE in r.pings)

        # DHCP: the lease comes from the range and is the one `net leases` shows
        nat_ip = address(nat)
        assert ipaddress.ip_address("10.61.0.128") <= nat_ip <= ipaddress.ip_address("10.61.0.254")
        leases = {(l.mac, l.ip) for l in nets.leases("p-nat")}
        assert ("52:54:00:61:00:01", str(nat_ip)) in leases
        assert nat.nics[0].router == "10.61.0.1" and nat.pings["10.61.0.1"]
        # static host entry: the fixed address
        assert str(address(routed)) == "10.62.0.50"

        # NAT: out yes, in no; routed: both ways
        assert nat.pings[OUTSIDE] and routed.pings[OUTSIDE]
        assert outside_pings(uplink_lab, "10.62.0.50")
        assert not outside_pings(uplink_lab, str(nat_ip))
    finally:
        sniffer.terminate()
        sources = set(sniffer.communicate(timeout=10)[0].split())
    # what "outside" saw: the NAT guest as the lab's uplink address, the routed guest as itself
    assert LAB_UPLINK in sources and "10.62.0.50" in sources
    assert str(nat_ip) not in sources


def test_isolated_guests_reach_each_other_and_the_host_only(uplink_lab, uphost, guest_image):
    nets = uphost.networks
    nets.create("p-iso", subnet="10.63.0.0/24", mode="isolated")
    nets.host_add("p-iso", "52:54:00:63:00:11", "10.63.0.11")
    nets.host_add("p-iso", "52:54:00:63:00:12", "10.63.0.12")
    first = boot(uphost, guest_image, "p-iso-a", [NicSpec(network="p-iso", mac="52:54:00:63:00:11")],
                 ["10.63.0.12", "10.63.0.1", OUTSIDE])
    second = boot(uphost, guest_image, "p-iso-b", [NicSpec(network="p-iso", mac="52:54:00:63:00:12")],
                  ["10.63.0.11", "10.63.0.1", OUTSIDE])
    assert str(address(first.report(0, has_lease))) == "10.63.0.11"
    assert str(address(second.report(0, has_lease))) == "10.63.0.12"
    a, b = first.fresh_report(), second.fresh_report()
    assert a.pings["10.63.0.12"] and b.pings["10.63.0.11"]          # each other
    assert a.pings["10.63.0.1"] and b.pings["10.63.0.1"]            # the host
    assert not a.pings[OUTSIDE] and not b.pings[OUTSIDE]            # nothing beyond
    assert not outside_pings(uplink_lab, "10.63.0.11")


def test_edit_subnet_renews_a_running_guest_without_restart(uplink_lab, uphost, guest_image):
    nets = uphost.networks
    nets.create("p-edit", subnet="10.64.0.0/24")
    guest = boot(uphost, guest_image, "p-edit-guest", [NicSpec(network="p-edit", mac="52:54:00:64:00:01")])
    before = guest.report(0, has_lease)
    assert address(before) in ipaddress.ip_network("10.64.0.0/24")
    domain_id = guest.dom.ID()
    since = len(guest.text)

    result = run_cli("net", "edit", "p-edit", "--subnet", "10.65.0.0/24", "--yes", uri=uplink_lab.uri)
    assert result.returncode == 0, result.stderr
    assert "re-attach NIC 52:54:00:64:00:01" in result.stdout

    after = guest.report(since, lambda r: has_lease(r) and address(r) in ipaddress.ip_network("10.65.0.0/24"))
    assert after.nics[0].mac == "52:54:00:64:00:01" and after.nics[0].router == "10.65.0.1"
    assert guest.dom.isActive() and guest.dom.ID() == domain_id  # the same running guest, never restarted
    assert ("52:54:00:64:00:01", str(address(after))) in {(l.mac, l.ip) for l in nets.leases("p-edit")}
    assert guest.fresh_report().pings["10.65.0.1"]
