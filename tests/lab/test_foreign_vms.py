"""VMs as other tools write them, on a real libvirtd: bridge, direct, user, vhost-user and socket
NICs, network disks (rbd, gluster, nbd with and without a name, iscsi, http) and disks by path,
whose pools and networks this host does not define. Listings, info and JSON say what the XML
says; export then plan says no changes."""
from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest

from tests.helpers import cli_ok, host_state, run_cli
from virtops.xmlmodels import doc as X

FOREIGN_XML = Path(__file__).parent.parent / "data" / "xml" / "dom-foreign.in.xml"
NAMES = ("fvm-auto", "fvm-plain")


@pytest.fixture(scope="module")
def foreign_vms(lab):
    """Two VMs defined from the foreign domain XML (new names and UUIDs), one marked autostart."""
    conn = libvirt.open(lab.uri)
    doms = []
    try:
        for i, name in enumerate(NAMES):
            root = X.parse(FOREIGN_XML.read_text().replace("52:54:00:0f:", f"52:54:00:{0x10 + i:02x}:"))
            root.find("name").text = name
            root.remove(root.find("uuid"))
            doms.append(conn.defineXML(X.to_string(root)))
        doms[0].setAutostart(1)
        yield lab
    finally:
        for dom in doms:
            dom.undefine()
        conn.close()


def test_listings_give_persistence_and_autostart(foreign_vms):
    for args in (("vm", "list", "--all", "--json"), ("vm", "list", "--all", "--long", "--json")):
        rows = {r["name"]: r for r in json.loads(cli_ok(foreign_vms.uri, *args))}
        assert [(rows[n]["persistent"], rows[n]["autostart"]) for n in NAMES] == [(True, True), (True, False)], args
    info = json.loads(cli_ok(foreign_vms.uri, "vm", "info", "fvm-auto", "--json"))
    assert (info["persistent"], info["autostart"]) == (True, True)


def test_nics_say_their_type_and_source(foreign_vms):
    info = json.loads(cli_ok(foreign_vms.uri, "vm", "info", "fvm-plain", "--json"))
    assert [(n["type"], n["network"], n["source"]) for n in info["nics"]] == [
        ("bridge", None, "midonet"), ("direct", None, "eth0"), ("user", None, None), ("ethernet", None, None),
        ("vhostuser", None, "/run/vhost/foreign.sock"), ("udp", None, "192.168.0.20:5555")]
    listed = cli_ok(foreign_vms.uri, "vm", "list", "--all", "--long")
    assert "bridge:midonet" in listed and "direct:eth0 (vepa)" in listed
    text = cli_ok(foreign_vms.uri, "vm", "info", "fvm-plain")
    assert "bridge:midonet" in text and "midonet " not in text.replace("bridge:midonet", "")


def test_network_and_path_disks_say_protocol_name_and_hosts(foreign_vms):
    disks = {d["target"]: d for d in json.loads(cli_ok(foreign_vms.uri, "vm", "info", "fvm-plain", "--json"))["disks"]}
    assert (disks["vda"]["protocol"], disks["vda"]["name"], disks["vda"]["hosts"]) == \
           ("rbd", "rbdpool/image1", ["mon1.example.org:6789", "mon2.example.org:6789"])
    assert (disks["vdb"]["protocol"], disks["vdb"]["name"], disks["vdb"]["source"]) == \
           ("nbd", None, "nbd://nbd.example.org:10809")
    assert (disks["vde"]["type"], disks["vde"]["path"]) == ("block", "/dev/mapper/vg0-guest")
    listed = cli_ok(foreign_vms.uri, "vm", "list", "--all", "--long")
    assert "vdb=nbd://nbd.example.org:10809" in listed and "vdb=-" not in listed
    assert "sda=iscsi://192.168.0.10:3260/iqn.2013-07.org.example:storage/1" in listed


def test_export_then_plan_says_no_changes_and_leaves_the_host_alone(foreign_vms, tmp_path):
    conn = libvirt.open(foreign_vms.uri)
    before = host_state(conn)
    spec = tmp_path / "host.yaml"
    spec.write_text(cli_ok(foreign_vms.uri, "export"))
    plan = run_cli("plan", "-f", str(spec), uri=foreign_vms.uri)
    assert plan.returncode == 0, plan.stderr
    assert "No changes" in plan.stdout
    assert host_state(conn) == before
    conn.close()
