"""`virtops net` against a real libvirtd in a lab host: every command, every refusal (host unchanged),
emitted XML valid against libvirt's network.rng, and the handbook's backup/restore round trip."""
from __future__ import annotations

import json
import subprocess

import libvirt
import pytest

from helpers import host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DomainSpec, KernelBoot, NicSpec

PREFIX = "t-"


@pytest.fixture
def nets(host, lab):
    """The networks API on the session lab; networks named t-* are removed afterwards and
    `default` is put back as libvirt ships it."""
    yield host.networks
    for net in host.conn.listAllNetworks():
        if net.name().startswith(PREFIX):
            persistent = net.isPersistent()  # a transient one is gone once destroyed
            if net.isActive():
                net.destroy()
            if persistent:
                net.undefine()
    for dom in host.conn.listAllDomains():
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
    host.networks.restore_default()


def cli(lab, *args):
    return run_cli(*args, uri=lab.uri)


def validate_config(host, name):
    """libvirt's own rendering of what we defined still validates against network.rng."""
    X.validate(X.parse(host.conn.networkLookupByName(name).XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)), "network")


# -- create ------------------------------------------------------------------------------
def test_handbook_mynetwork_in_one_command(lab, host, nets):
    result = cli(lab, "net", "create", "t-mynetwork", "--subnet", "192.168.200.0/24", "--gateway", "192.168.200.1",
                 "--dhcp", "192.168.200.128-192.168.200.254", "--mode", "route")
    assert result.returncode == 0, result.stderr
    info = nets.info("t-mynetwork")
    assert (info.mode, info.dev, info.subnet, info.gateway, info.dhcp_range) == (
        "route", None, "192.168.200.0/24", "192.168.200.1", "192.168.200.128-192.168.200.254")
    assert info.active and info.autostart and info.persistent
    validate_config(host, "t-mynetwork")
    node = X.parse(host.conn.networkLookupByName("t-mynetwork").XMLDesc(0))
    assert node.find("forward").get("mode") == "route" and node.find("forward").get("dev") is None
    # libvirt made the bridge: it is up in the lab's namespace with the gateway address
    addr = subprocess.run(["ip", "-n", lab.netns, "-j", "addr", "show", info.bridge], capture_output=True, text=True)
    assert "192.168.200.1" in addr.stdout


def test_defaults_follow_virt_manager(lab, host, nets):
    before = {n.bridge for n in nets.list()}
    info = nets.create("t-defaults", subnet="10.31.0.0/24")
    assert info.mode == "nat" and info.gateway == "10.31.0.1" and info.dhcp_range == "10.31.0.128-10.31.0.254"
    assert info.bridge.startswith("virbr") and info.bridge not in before
    validate_config(host, "t-defaults")


def test_every_mode_and_option(lab, host, nets):
    nets.create("t-iso", subnet="10.32.0.0/24", mode="isolated", ipv6="fd00:32::/64", domain="iso.example", mtu=1400,
                dhcp=False)
    nets.create("t-open", subnet="10.33.0.0/24", mode="open", start=False, autostart=False)
    nets.create("t-nat-dev", subnet="10.34.0.0/24", mode="nat", dev="lo", bridge="t-br34")
    iso, opn, natdev = nets.info("t-iso"), nets.info("t-open"), nets.info("t-nat-dev")
    assert (iso.mode, iso.dhcp_range, iso.ipv6, iso.domain, iso.mtu) == ("isolated", None, "fd00:32::/64", "iso.example", 1400)
    assert (opn.mode, opn.active, opn.autostart) == ("open", False, False)
    assert (natdev.dev, natdev.bridge) == ("lo", "t-br34")
    for name in ("t-iso", "t-open", "t-nat-dev"):
        validate_config(host, name)


def test_bridge_mode_uses_an_existing_host_bridge(lab, host, nets):
    subprocess.run(["ip", "-n", lab.netns, "link", "add", "t-br0", "type", "bridge"], check=True)
    try:
        result = cli(lab, "net", "create", "t-bridged", "--mode", "bridge", "--bridge", "t-br0")
        assert result.returncode == 0, result.stderr
        info = nets.info("t-bridged")
        assert (info.mode, info.bridge, info.subnet, info.active) == ("bridge", "t-br0", None, True)
        validate_config(host, "t-bridged")
    finally:
        nets.delete("t-bridged", force=True) if nets.exists("t-bridged") else None
        subprocess.run(["ip", "-n", lab.netns, "link", "del", "t-br0"], check=False)


CREATE_REFUSALS = [
    (["bad/name", "--subnet", "10.40.0.0/24"], "name:"),
    (["default", "--subnet", "10.40.0.0/24"], "name:"),
    (["t-x", "--subnet", "10.40.0.1/24"], "subnet:"),
    (["t-x", "--subnet", "not-a-net"], "subnet:"),
    (["t-x"], "subnet:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--gateway", "10.41.0.1"], "gateway:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--gateway", "10.40.0.255"], "gateway:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--gateway", "10.40.0.0"], "gateway:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--dhcp", "10.40.0.10-10.40.1.10"], "dhcp:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--dhcp", "10.40.0.200-10.40.0.100"], "dhcp:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--dhcp", "10.40.0.1-10.40.0.100"], "dhcp:"),
    (["t-x", "--subnet", "192.168.122.128/25"], "overlaps 192.168.122.0/24 of network default"),
    (["t-x", "--subnet", "192.168.0.0/16"], "overlaps 192.168.122.0/24 of network default"),
    (["t-x", "--subnet", "127.3.0.0/24"], "overlaps the host's address 127.0.0.1/8 on lo"),
    (["t-x", "--subnet", "10.40.0.0/24", "--bridge", "virbr0"], "bridge: virbr0 is already the bridge of network default"),
    (["t-x", "--subnet", "10.40.0.0/24", "--bridge", "lo"], "bridge: the host already has an interface lo"),
    (["t-x", "--subnet", "10.40.0.0/24", "--dev", "eth9"], "dev: the host has no interface 'eth9'"),
    (["t-x", "--subnet", "10.40.0.0/24", "--mode", "isolated", "--dev", "lo"], "dev: mode isolated"),
    (["t-x", "--mode", "bridge", "--bridge", "nobr9"], "bridge: the host has no interface 'nobr9'"),
    (["t-x", "--mode", "bridge", "--bridge", "lo"], "bridge: lo is a "),
    (["t-x", "--mode", "bridge", "--bridge", "virbr0", "--subnet", "10.40.0.0/24"], "mode: a bridge-mode network"),
    (["t-x", "--subnet", "10.40.0.0/24", "--ipv6", "fd00::1/64"], "ipv6:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--mtu", "20"], "mtu:"),
    (["t-x", "--subnet", "10.40.0.0/24", "--ipv6", "fd00:40::/64", "--mode", "route", "--nat-ipv6"],
     "--nat-ipv6: mode route does no NAT"),
    (["t-x", "--subnet", "10.40.0.0/24", "--nat-ipv6"], "--nat-ipv6: the network has no IPv6 address"),
    (["t-x", "--mode", "bridge", "--bridge", "virbr0", "--ipv6-guests"], "--ipv6-guests: a bridge-mode network"),
    (["t-x", "--ipv6-guests"], "subnet: a network in mode nat needs an address"),
]


@pytest.mark.parametrize("args, expected", CREATE_REFUSALS, ids=[" ".join(a) for a, _ in CREATE_REFUSALS])
def test_create_refusals_leave_the_host_unchanged(lab, host, nets, args, expected):
    before = host_state(host.conn)
    result = cli(lab, "net", "create", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert host_state(host.conn) == before


def test_subnet_overlapping_a_host_route_or_another_ipv6_network(lab, host, nets):
    nets.create("t-v6", subnet="10.42.0.0/24", ipv6="fd00:42::/64", mode="isolated")
    subprocess.run(["ip", "-n", lab.netns, "route", "add", "10.77.0.0/16", "dev", "lo"], check=True)
    try:
        before = host_state(host.conn)
        routed = cli(lab, "net", "create", "t-x", "--subnet", "10.77.3.0/24")
        v6 = cli(lab, "net", "create", "t-y", "--subnet", "10.43.0.0/24", "--ipv6", "fd00:42::/48")
        assert routed.returncode == 1 and "overlaps the host's route to 10.77.0.0/16 via lo" in routed.stderr
        assert v6.returncode == 1 and "ipv6: fd00:42::/48 overlaps fd00:42::/64 of network t-v6" in v6.stderr
        assert host_state(host.conn) == before
    finally:
        subprocess.run(["ip", "-n", lab.netns, "route", "del", "10.77.0.0/16", "dev", "lo"], check=False)


def test_a_subnet_overlapping_any_address_of_a_multi_address_network_is_refused(lab, host, nets):
    """Not only the first IPv4 and IPv6 <ip> of another network count: its second ones too."""
    host.conn.networkDefineXML("<network><name>t-multi</name><ip address='10.44.0.1' prefix='24'/>"
                               "<ip address='10.45.0.1' prefix='24'/><ip family='ipv6' address='fd00:44::1' "
                               "prefix='64'/><ip family='ipv6' address='fd00:45::1' prefix='64'/></network>")
    before = host_state(host.conn)
    second_v4 = cli(lab, "net", "create", "t-x", "--subnet", "10.45.0.0/25")
    second_v6 = cli(lab, "net", "create", "t-y", "--subnet", "10.46.0.0/24", "--ipv6", "fd00:45::/64")
    assert second_v4.returncode == 1 and "subnet: 10.45.0.0/25 overlaps 10.45.0.0/24 of network t-multi" in \
        second_v4.stderr
    assert second_v6.returncode == 1 and "ipv6: fd00:45::/64 overlaps fd00:45::/64 of network t-multi" in \
        second_v6.stderr
    assert host_state(host.conn) == before


def test_usage_errors_exit_2(lab, host, nets):
    before = host_state(host.conn)
    both = cli(lab, "net", "create", "t-x", "--subnet", "10.40.0.0/24", "--dhcp", "10.40.0.10-10.40.0.20", "--no-dhcp")
    mode = cli(lab, "net", "create", "t-x", "--subnet", "10.40.0.0/24", "--mode", "mesh")
    assert (both.returncode, mode.returncode) == (2, 2)
    assert host_state(host.conn) == before


def test_create_undoes_itself_when_a_step_fails(lab, host, nets, monkeypatch):
    """Define succeeds, start fails (simulated): the definition is removed again."""
    original = host.conn.networkDefineXML

    def define_then_fail_to_start(xml):
        net = original(xml)
        net.create = _raise_libvirt_error
        return net

    monkeypatch.setattr(host.conn, "networkDefineXML", define_then_fail_to_start, raising=False)
    before = host_state(host.conn)
    with pytest.raises(Exception, match="simulated failure"):
        nets.create("t-fails", subnet="10.44.0.0/24")
    assert host_state(host.conn) == before and not nets.exists("t-fails")


def _raise_libvirt_error(*_args):
    raise libvirt.libvirtError("simulated failure to start")


# -- list, info, lifecycle ----------------------------------------------------------------
def test_list_info_start_stop_autostart(lab, host, nets):
    nets.create("t-life", subnet="10.45.0.0/24")
    listing = json.loads(cli(lab, "net", "list", "--all", "--json").stdout)
    row = next(r for r in listing if r["name"] == "t-life")
    assert (row["active"], row["autostart"], row["persistent"], row["mode"], row["subnet"], row["leases"]) == (
        True, True, True, "nat", "10.45.0.0/24", 0)
    table = cli(lab, "net-list", "--all").stdout.splitlines()
    assert table[0].split()[:4] == ["Name", "State", "Autostart", "Persistent"]
    assert cli(lab, "net", "stop", "t-life").returncode == 0 and not nets.info("t-life").active
    assert "t-life" not in cli(lab, "net", "list").stdout and "t-life" in cli(lab, "net", "list", "--all").stdout
    refused = cli(lab, "net", "leases", "t-life")
    assert refused.returncode == 1 and "not running" in refused.stderr
    assert cli(lab, "net-start", "t-life").returncode == 0 and nets.info("t-life").active
    before = host_state(host.conn)
    again = cli(lab, "net", "start", "t-life")
    assert again.returncode == 1 and "already running" in again.stderr and host_state(host.conn) == before
    assert cli(lab, "net", "autostart", "t-life", "--disable").returncode == 0 and not nets.info("t-life").autostart
    assert cli(lab, "net-autostart", "t-life").returncode == 0 and nets.info("t-life").autostart
    info = json.loads(cli(lab, "net", "info", "t-life", "--json").stdout)
    assert info["dhcp_range"] == "10.45.0.128-10.45.0.254" and info["gateway"] == "10.45.0.1"
    missing = cli(lab, "net", "info", "t-nonesuch")
    assert missing.returncode == 1 and "no network named 't-nonesuch'" in missing.stderr


def test_delete_refuses_while_guests_use_it(lab, host, nets):
    nets.create("t-used", subnet="10.46.0.0/24")
    spec = DomainSpec(name="t-guest", boot=KernelBoot(kernel="/nonexistent/vmlinuz"),
                      nics=[NicSpec(network="t-used", mac="52:54:00:46:00:01")])
    host.conn.defineXML(spec.to_xml())
    before = host_state(host.conn)
    refused = cli(lab, "net", "delete", "t-used")
    assert refused.returncode == 1 and "t-guest (defined)" in refused.stderr and "--force" in refused.stderr
    assert host_state(host.conn) == before
    forced = cli(lab, "net", "delete", "t-used", "--force")
    assert forced.returncode == 0 and "t-guest" in forced.stdout and not nets.exists("t-used")


def test_undefine_keeps_a_running_network_as_transient(lab, host, nets):
    nets.create("t-undef", subnet="10.47.0.0/24")
    assert cli(lab, "net-undefine", "t-undef").returncode == 0
    info = nets.info("t-undef")
    assert info.active and not info.persistent


# -- backup and restore -------------------------------------------------------------------
def test_dumpxml_delete_define_gives_back_the_same_network(lab, host, nets, tmp_path):
    backup = tmp_path / "default_net.xml"
    original = host.conn.networkLookupByName("default").XMLDesc(0)
    assert cli(lab, "net", "dumpxml", "default", "-o", str(backup)).returncode == 0
    assert backup.read_text() == original  # exactly what libvirt gives
    assert cli(lab, "net-dumpxml", "default").stdout == original
    assert cli(lab, "net", "delete", "default").returncode == 0 and not nets.exists("default")
    restored = cli(lab, "net", "define", str(backup), "--start")
    assert restored.returncode == 0, restored.stderr
    assert host.conn.networkLookupByName("default").XMLDesc(0) == original


def test_define_collisions_refused_unless_replace(lab, host, nets, tmp_path):
    nets.create("t-orig", subnet="10.48.0.0/24")
    text = host.conn.networkLookupByName("t-orig").XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    same = tmp_path / "same.xml"
    same.write_text(text)
    renamed = tmp_path / "renamed.xml"
    renamed.write_text(text.replace("<name>t-orig</name>", "<name>t-copy</name>"))
    broken = tmp_path / "broken.xml"
    broken.write_text("<network><name>t-b</name><ip address='x'/></network>")
    before = host_state(host.conn)
    for path, expected in ((same, "name 't-orig' is already a network"), (renamed, "already belongs to network 't-orig'"),
                           (broken, "file: libvirt's network schema rejects it")):
        result = cli(lab, "net", "define", str(path))
        assert result.returncode == 1 and expected in result.stderr, result.stderr
        assert host_state(host.conn) == before
    replaced = cli(lab, "net", "define", str(renamed), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert not nets.exists("t-orig") and nets.info("t-copy").active and nets.info("t-copy").subnet == "10.48.0.0/24"


# -- static hosts and net-update -----------------------------------------------------------
def test_static_hosts_live_and_persistent(lab, host, nets):
    nets.create("t-hosts", subnet="10.49.0.0/24")
    added = cli(lab, "net", "host", "add", "t-hosts", "--mac", "52:54:00:49:00:01", "--ip", "10.49.0.10", "--hostname", "db")
    assert added.returncode == 0, added.stderr
    net = host.conn.networkLookupByName("t-hosts")
    for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE):
        entry = X.parse(net.XMLDesc(flags)).find("ip/dhcp/host")
        assert (entry.get("mac"), entry.get("ip"), entry.get("name")) == ("52:54:00:49:00:01", "10.49.0.10", "db")
    before = host_state(host.conn)
    for args, expected in (
        (["--mac", "52:54:00:49:00:02", "--ip", "10.49.0.10"], "ip: 10.49.0.10 is already given to 52:54:00:49:00:01"),
        (["--mac", "52:54:00:49:00:01", "--ip", "10.49.0.11"], "mac: 52:54:00:49:00:01 already has a host entry"),
        (["--mac", "52:54:00:49:00:02", "--ip", "10.50.0.10"], "ip: 10.50.0.10 is outside the subnet 10.49.0.0/24"),
        (["--mac", "52:54:00:49:00:02", "--ip", "10.49.0.1"], "ip: 10.49.0.1 is the gateway"),
        (["--mac", "52:54:00:49:00:02", "--ip", "10.49.0.255"], "broadcast"),
        (["--mac", "banana", "--ip", "10.49.0.12"], "mac: 'banana' is not a MAC address"),
    ):
        result = cli(lab, "net", "host", "add", "t-hosts", *args)
        assert result.returncode == 1 and expected in result.stderr, result.stderr
    unknown = cli(lab, "net", "host", "remove", "t-hosts", "--mac", "52:54:00:49:00:09")
    assert unknown.returncode == 1 and "no host entry for 52:54:00:49:00:09" in unknown.stderr
    assert host_state(host.conn) == before
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
               "<host name='printer' ip='10.49.0.13'/>",  # by name only, as virsh net-update adds one
               libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
    before = host_state(host.conn)
    taken = cli(lab, "net", "host", "add", "t-hosts", "--mac", "52:54:00:49:00:03", "--ip", "10.49.0.13")
    assert taken.returncode == 1 and "ip: 10.49.0.13 is already given to the host named printer;" in taken.stderr, \
        taken.stderr
    assert host_state(host.conn) == before
    via_virsh_name = cli(lab, "net-update", "t-hosts", "add", "ip-dhcp-host", "<host mac='52:54:00:49:00:02' ip='10.49.0.12'/>")
    assert via_virsh_name.returncode == 0, via_virsh_name.stderr
    assert cli(lab, "net", "host", "remove", "t-hosts", "--mac", "52:54:00:49:00:01").returncode == 0
    hosts = nets.info("t-hosts").hosts
    assert [(h.mac, h.ip) for h in hosts] == [("52:54:00:49:00:02", "10.49.0.12")]


# Hosts as other tools make them (issue 17): by MAC, by name only, an IPv6 one by DUID, and a name on
# an IPv4 and an IPv6 host (a dual-stack guest), each removed by what picks it.
KEYED_HOSTS = ("<network><name>t-keys</name><bridge name='t-brkeys'/>"
               "<ip address='10.55.0.1' prefix='24'><dhcp><range start='10.55.0.128' end='10.55.0.254'/>"
               "<host mac='52:54:00:55:00:01' name='db' ip='10.55.0.10'/><host name='printer' ip='10.55.0.11'/>"
               "<host name='b.example.com' ip='10.55.0.12'/></dhcp></ip>"
               "<ip family='ipv6' address='fd00:55::1' prefix='64'><dhcp>"
               "<host id='0:1:0:1:2c:0:0:1:52:54:0:55:0:2' ip='fd00:55::10'/>"
               "<host name='b.example.com' ip='fd00:55::12'/></dhcp></ip></network>")


def _host_addresses(host, name):
    """The addresses of the network's static hosts, live and persistent."""
    net = host.conn.networkLookupByName(name)
    return [sorted(h.get("ip") for h in X.parse(net.XMLDesc(flags)).iterfind("ip/dhcp/host"))
            for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE)]


def test_host_remove_picks_an_entry_by_any_of_its_keys(lab, host, nets):
    host.conn.networkDefineXML(KEYED_HOSTS).create()
    before = host_state(host.conn)
    for args, expected in (
        ([], "--mac: give one of --mac, --name, --ip or --duid to pick the host entry to remove."),
        (["--mac", "52:54:00:55:00:01", "--ip", "10.55.0.10"],
         "--mac: give only one of --mac and --ip: each picks the host entry to remove on its own."),
        (["--name", "b.example.com"], "--name: b.example.com picks 2 host entries of network t-keys (name b.example.com "
                                      "-> 10.55.0.12, name b.example.com -> fd00:55::12); give --ip instead to pick one."),
        (["--duid", "00:01:00:01:2c:00:00:01:52:54:00:55:00:09"],
         "--duid: network t-keys has no host entry for 00:01:00:01:2c:00:00:01:52:54:00:55:00:09; its entries: MAC "
         "52:54:00:55:00:01 -> 10.55.0.10, name printer -> 10.55.0.11, name b.example.com -> 10.55.0.12, DUID "
         "0:1:0:1:2c:0:0:1:52:54:0:55:0:2 -> fd00:55::10, name b.example.com -> fd00:55::12."),
        (["--ip", "10.55.0.300"], "--ip: '10.55.0.300' is not an IP address;"),
    ):
        refused = cli(lab, "net", "host", "remove", "t-keys", *args)
        assert refused.returncode == 1 and refused.stderr.startswith(f"error: {expected}"), refused.stderr
        assert refused.stderr.count("\n") == 1
    assert host_state(host.conn) == before
    removals = (
        (["--duid", "00:01:00:01:2c:00:00:01:52:54:00:55:00:02"], "DUID 0:1:0:1:2c:0:0:1:52:54:0:55:0:2 -> fd00:55::10"),
        (["--name", "printer"], "name printer -> 10.55.0.11"),
        (["--ip", "fd00:55::12"], "name b.example.com -> fd00:55::12"),
        (["--mac", "52:54:00:55:00:01"], "MAC 52:54:00:55:00:01 -> 10.55.0.10"),
    )
    left = ["10.55.0.10", "10.55.0.11", "10.55.0.12", "fd00:55::10", "fd00:55::12"]
    for args, entry in removals:
        removed = cli(lab, "net", "host", "remove", "t-keys", *args)
        assert removed.returncode == 0 and removed.stdout == f"Network t-keys: removed the entry {entry}.\n", \
            removed.stdout + removed.stderr
        left.remove(entry.rsplit(" ", 1)[1])
        assert _host_addresses(host, "t-keys") == [left, left]
    # virsh's form: the entry with every attribute the fragment gives, the same rule underneath
    deleted = cli(lab, "net-update", "t-keys", "delete", "ip-dhcp-host", "<host name='b.example.com' ip='10.55.0.12'/>")
    assert deleted.returncode == 0 and "removed name b.example.com -> 10.55.0.12" in deleted.stdout, deleted.stderr
    assert _host_addresses(host, "t-keys") == [[], []]
    validate_config(host, "t-keys")


# -- edit ---------------------------------------------------------------------------------
def _bridge_ifindex(lab, bridge):
    out = subprocess.run(["ip", "-n", lab.netns, "-j", "link", "show", bridge], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]["ifindex"]


def test_edit_dhcp_range_is_live(lab, host, nets):
    nets.create("t-edit", subnet="10.51.0.0/24")
    bridge = nets.info("t-edit").bridge
    ifindex = _bridge_ifindex(lab, bridge)
    result = cli(lab, "net", "edit", "t-edit", "--dhcp", "10.51.0.100-10.51.0.150")
    assert result.returncode == 0 and "in place" in result.stdout, result.stderr
    assert nets.info("t-edit").dhcp_range == "10.51.0.100-10.51.0.150"
    live = X.parse(host.conn.networkLookupByName("t-edit").XMLDesc(0)).find("ip/dhcp/range")
    assert (live.get("start"), live.get("end")) == ("10.51.0.100", "10.51.0.150")
    # updated in place: the bridge (and every guest's tap on it) was never torn down
    assert _bridge_ifindex(lab, bridge) == ifindex and nets.info("t-edit").active


def test_edit_needing_restart_is_announced_then_done(lab, host, nets):
    nets.create("t-move", subnet="10.52.0.0/24")
    uuid = nets.info("t-move").uuid
    before = host_state(host.conn)
    plan = cli(lab, "net", "edit", "t-move", "--subnet", "10.53.0.0/24", "--mode", "route")
    assert plan.returncode == 0 and "--yes" in plan.stdout and "restart t-move" in plan.stdout
    assert host_state(host.conn) == before
    overlapping = cli(lab, "net", "edit", "t-move", "--subnet", "192.168.122.0/24", "--yes")
    assert overlapping.returncode == 1 and "overlaps 192.168.122.0/24 of network default" in overlapping.stderr
    assert host_state(host.conn) == before
    done = cli(lab, "net", "edit", "t-move", "--subnet", "10.53.0.0/24", "--mode", "route", "--yes")
    assert done.returncode == 0, done.stderr
    info = nets.info("t-move")
    assert (info.subnet, info.gateway, info.dhcp_range, info.mode, info.uuid, info.active) == (
        "10.53.0.0/24", "10.53.0.1", "10.53.0.128-10.53.0.254", "route", uuid, True)
    validate_config(host, "t-move")


def test_a_moved_subnet_keeps_the_hosts_it_holds_and_refuses_to_drop_one(lab, host, nets):
    """A host known by name only (as other tools make them) moves with the subnet like one by MAC:
    kept when the new subnet holds it, and the move refused, naming it, when it would not."""
    host.conn.networkDefineXML("<network><name>t-hold</name><bridge name='t-brhold'/>"
                               "<ip address='10.56.0.1' prefix='24'><dhcp><range start='10.56.0.128' end='10.56.0.254'/>"
                               "<host mac='52:54:00:56:00:01' ip='10.56.0.10'/><host name='printer' ip='10.56.0.11'/>"
                               "</dhcp></ip></network>").create()
    before = host_state(host.conn)
    out = cli(lab, "net", "edit", "t-hold", "--subnet", "10.57.0.0/24", "--yes")
    assert out.returncode == 1 and out.stderr.strip() == (
        "error: --subnet: host entries MAC 52:54:00:56:00:01 -> 10.56.0.10, name printer -> 10.56.0.11 are outside "
        "10.57.0.0/24; remove them first with `virtops net host remove`."), out.stderr
    assert host_state(host.conn) == before
    widened = cli(lab, "net", "edit", "t-hold", "--subnet", "10.56.0.0/23", "--yes")
    assert widened.returncode == 0, widened.stderr
    assert _host_addresses(host, "t-hold") == [["10.56.0.10", "10.56.0.11"]] * 2
    assert nets.info("t-hold").subnet == "10.56.0.0/23"


def _bridge_ipv6(lab, bridge) -> list[str]:
    """The global IPv6 addresses libvirt gave the network's bridge in the lab."""
    out = subprocess.run(["ip", "-n", lab.netns, "-j", "-6", "addr", "show", "dev", bridge, "scope", "global"],
                         capture_output=True, text=True, check=True)
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out.stdout or "[]") for a in link["addr_info"]]


def test_edit_changes_adds_and_removes_the_ipv6_subnet(lab, host, nets):
    nets.create("t-six", subnet="10.56.0.0/24", ipv6="fd00:56::/64", bridge="t-brsix")
    nets.create("t-six-other", subnet="10.57.0.0/24", ipv6="fd00:57::/64")
    assert _bridge_ipv6(lab, "t-brsix") == ["fd00:56::1/64"]
    before = host_state(host.conn)
    plan = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:58::/64")
    assert plan.returncode == 0 and "IPv6 subnet fd00:56::/64 -> fd00:58::/64" in plan.stdout, plan.stdout + plan.stderr
    assert "--yes" in plan.stdout and "restart t-six" in plan.stdout
    for value, expected in (("fd00:57::/80", "--ipv6: fd00:57::/80 overlaps fd00:57::/64 of network t-six-other; "
                                             "choose a subnet no other network uses."),
                            ("fd00:58::/127", "--ipv6: 'fd00:58::/127' is too small; use a prefix of /126 or shorter"),
                            ("fd00:58::1/64", "--ipv6: 'fd00:58::1/64' is not an IPv6 network;")):
        refused = cli(lab, "net", "edit", "t-six", "--ipv6", value, "--yes")
        assert refused.returncode == 1 and refused.stderr.startswith(f"error: {expected}"), refused.stderr
    assert host_state(host.conn) == before
    # A static host of the IPv6 address must fit the new subnet, by the rules of a new network's addresses.
    net = host.conn.networkLookupByName("t-six")
    net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, 1,
               "<host id='0:3:0:1:52:54:0:56:0:1' ip='fd00:56::10'/>",
               libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
    before = host_state(host.conn)
    outside = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:58::/64", "--yes")
    assert outside.returncode == 1 and outside.stderr == (
        "error: --ipv6: its host entries DUID 0:3:0:1:52:54:0:56:0:1 -> fd00:56::10 would be outside fd00:58::/64; "
        "give a subnet that holds them, or remove them first with `virtops net host remove`.\n"), outside.stderr
    assert host_state(host.conn) == before
    wider = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:56::/48", "--yes")  # dnsmasq: DHCPv6 on /64 or longer
    assert wider.returncode == 1 and wider.stderr == (
        "error: --ipv6: with the DHCPv6 ranges and hosts the network keeps, fd00:56::/48 serves DHCPv6, which dnsmasq "
        "gives on a prefix of /64 or longer only; give such a prefix, or drop the address's ranges and hosts.\n"), \
        wider.stderr
    assert host_state(host.conn) == before
    narrower = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:56::/80", "--yes")  # holds it: the host stays
    assert narrower.returncode == 0, narrower.stderr
    assert _host_addresses(host, "t-six") == [["fd00:56::10"], ["fd00:56::10"]]
    assert _bridge_ipv6(lab, "t-brsix") == ["fd00:56::1/80"]
    assert cli(lab, "net", "host", "remove", "t-six", "--duid", "0:3:0:1:52:54:0:56:0:1").returncode == 0
    moved = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:58::/64", "--yes")
    assert moved.returncode == 0 and "IPv6 subnet fd00:56::/80 -> fd00:58::/64" in moved.stdout, moved.stderr
    info = nets.info("t-six")
    assert (info.ipv6, info.subnet, info.bridge, info.active) == ("fd00:58::/64", "10.56.0.0/24", "t-brsix", True)
    assert _bridge_ipv6(lab, "t-brsix") == ["fd00:58::1/64"]
    validate_config(host, "t-six")
    removed = cli(lab, "net", "edit", "t-six", "--ipv6", "", "--yes")  # as --domain "" removes the domain
    assert removed.returncode == 0 and "IPv6 subnet fd00:58::/64 -> -" in removed.stdout, removed.stderr
    assert nets.info("t-six").ipv6 is None and _bridge_ipv6(lab, "t-brsix") == []
    assert X.parse(host.conn.networkLookupByName("t-six").XMLDesc(0)).find("ip[@family='ipv6']") is None
    added = cli(lab, "net", "edit", "t-six", "--ipv6", "fd00:59::/64", "--yes")
    assert added.returncode == 0 and "IPv6 subnet - -> fd00:59::/64" in added.stdout, added.stderr
    assert _bridge_ipv6(lab, "t-brsix") == ["fd00:59::1/64"]
    validate_config(host, "t-six")


# -- the IPv6 flags ---------------------------------------------------------------------------
def _in_lab(lab, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", lab.netns, *argv], check=True, capture_output=True,
                          text=True).stdout


def _guests_talk_ipv6(lab, bridge: str) -> bool:
    """Whether libvirt's IPv6 firewall lets the guests on the bridge reach each other (and nothing else)."""
    rules = _in_lab(lab, "ip6tables-save", "-t", "filter")
    return f"-A LIBVIRT_FWX -i {bridge} -o {bridge} -j ACCEPT" in rules and f"-A LIBVIRT_FWO -i {bridge} -j REJECT" in rules


def test_ipv6_between_guests_gets_the_bridge_its_ipv6_rules_without_an_address(lab, host, nets):
    """libvirt gives a network without an IPv6 address no IPv6 firewall rules, unless ipv6='yes':
    then guests on its bridge may talk IPv6 with each other, and no further. The flag is created,
    shown, and switched off by an announced restart."""
    created = cli(lab, "net", "create", "t-lan6", "--mode", "isolated", "--ipv6-guests", "--bridge", "t-br61")
    assert created.returncode == 0, created.stderr
    host.conn.networkDefineXML("<network><name>t-lan6off</name><bridge name='t-br62'/></network>").create()
    assert (_guests_talk_ipv6(lab, "t-br61"), _guests_talk_ipv6(lab, "t-br62")) == (True, False)
    info = json.loads(cli(lab, "net", "info", "t-lan6", "--json").stdout)
    assert (info["ipv6_guests"], info["subnet"], info["addresses"]) == (True, None, [])
    assert "IPv6 between guests: yes" in cli(lab, "net", "info", "t-lan6").stdout
    validate_config(host, "t-lan6")
    before = host_state(host.conn)
    for mode in ("nat", "route"):  # libvirt forwards from an address only: the core's sentence, not its XML error
        forwarding = cli(lab, "net", "edit", "t-lan6", "--mode", mode, "--yes")
        assert forwarding.returncode == 1 and forwarding.stderr.startswith(
            f"error: --mode: network t-lan6 has no address, and mode {mode} forwards from one;"), forwarding.stderr
        assert forwarding.stderr.count("\n") == 1
    assert host_state(host.conn) == before
    plan = cli(lab, "net", "edit", "t-lan6", "--no-ipv6-guests")
    assert plan.returncode == 0 and "IPv6 between guests on -> off" in plan.stdout and "restart t-lan6" in plan.stdout
    assert host_state(host.conn) == before
    done = cli(lab, "net", "edit", "t-lan6", "--no-ipv6-guests", "--yes")
    assert done.returncode == 0, done.stderr
    assert (nets.info("t-lan6").ipv6_guests, _guests_talk_ipv6(lab, "t-br61")) == (False, False)


def test_nat_for_ipv6_masquerades_the_ipv6_subnet(lab, host, nets):
    """Without nat_ipv6 libvirt routes a NAT network's IPv6 subnet; with it, it masquerades it as IPv4."""
    created = cli(lab, "net", "create", "t-v6nat", "--ipv6", "fd00:63::/64", "--nat-ipv6", "--bridge", "t-br63")
    assert created.returncode == 0, created.stderr
    nets.create("t-v6route", ipv6="fd00:64::/64", bridge="t-br64")
    rules = _in_lab(lab, "ip6tables-save", "-t", "nat")
    assert "-s fd00:63::/64 ! -d fd00:63::/64 -j MASQUERADE" in rules and "fd00:64::/64" not in rules
    assert (nets.info("t-v6nat").nat_ipv6, nets.info("t-v6route").nat_ipv6) == (True, False)
    validate_config(host, "t-v6nat")
    before = host_state(host.conn)
    refused = cli(lab, "net", "edit", "t-v6route", "--mode", "route", "--nat-ipv6", "--yes")
    assert refused.returncode == 1 and "--nat-ipv6: mode route does no NAT" in refused.stderr
    assert host_state(host.conn) == before
    routed = cli(lab, "net", "edit", "t-v6nat", "--mode", "route", "--yes")  # NAT for IPv6 leaves with NAT
    assert routed.returncode == 0 and "NAT for IPv6 on -> off" in routed.stdout, routed.stdout + routed.stderr
    assert host.conn.networkLookupByName("t-v6nat").XMLDesc(0).count("<nat") == 0
    assert "fd00:63::/64 ! -d fd00:63::/64 -j MASQUERADE" not in _in_lab(lab, "ip6tables-save", "-t", "nat")


# -- the stock default network --------------------------------------------------------------
def test_net_default_recreates_and_repairs(lab, host, nets):
    unchanged = cli(lab, "net", "default")
    assert unchanged.returncode == 0 and "nothing changed" in unchanged.stdout
    nets.edit("default", yes=True, subnet="10.54.0.0/24")
    nets.set_autostart("default", False)
    repaired = cli(lab, "net", "default")
    assert repaired.returncode == 0 and "subnet 10.54.0.0/24 -> 192.168.122.0/24" in repaired.stdout
    assert "autostart" in repaired.stdout
    nets.delete("default")
    created = cli(lab, "net", "default")
    assert created.returncode == 0 and "created network default" in created.stdout
    info = nets.info("default")
    assert (info.mode, info.bridge, info.gateway, info.dhcp_range, info.active, info.autostart) == (
        "nat", "virbr0", "192.168.122.1", "192.168.122.2-192.168.122.254", True, True)
