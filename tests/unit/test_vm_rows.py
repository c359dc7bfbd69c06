"""`vm list`'s reading of domain XML, and its light start-up. (That its brief and long readings
agree is tested on a real libvirtd, in tests/lab/test_vm_listing.py: libvirt's test driver gives
no vCPU, memory or disk stats.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from virtops.cli.listings import nic_text
from virtops.ops import vmrows
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec


def test_listing_imports_no_pydantic():
    """The listing, the host and the CLI's vm commands import no pydantic (about 70 ms)."""
    code = "import sys, virtops.ops.vmrows, virtops.host, virtops.cli.vm; sys.exit('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_vm_row_reads_the_xml_of_other_tools():
    """A domain as other tools write it (memory in GiB, a block disk without a driver) reads right."""
    dom = X.element("domain", type="kvm", id="7")
    X.sub(dom, "name", "other")
    X.sub(dom, "memory", 2, unit="GiB")
    X.sub(dom, "vcpu", 3, placement="static")
    disk = X.sub(X.sub(dom, "devices"), "disk", type="block", device="disk")
    X.sub(disk, "source", dev="/dev/sdz")
    X.sub(disk, "target", dev="sdz", bus="sata")
    row = vmrows.vm_row(dom, 7, 1)
    assert (row["id"], row["state"], row["running"], row["vcpus"], row["memory_bytes"]) == (7, "running", True, 3, 2 << 30)
    assert (row["disks"][0]["source"], row["disks"][0]["bus"], row["nics"]) == ("/dev/sdz", "sata", [])


def test_drivers_without_bulk_stats_are_read_from_the_xml(test_host):
    """libvirt's test driver gives no vCPU, memory or disk stats: its stopped VMs are read from XML."""
    spec = DomainSpec(name="idle", memory_mib=192, vcpus=2, disks=[DiskSpec(target="vda", path="/srv/idle.img")])
    test_host.conn.defineXML(spec.to_xml())
    brief, = vmrows.summaries(test_host)
    full, = vmrows.detailed(test_host)
    assert (brief["name"], brief["state"], brief["running"], brief["id"]) == ("idle", "shut off", False, None)
    assert (brief["vcpus"], brief["memory_bytes"], brief["disks"]) == (2, 192 << 20, ["vda"])
    assert (full["vcpus"], full["memory_bytes"]) == (2, 192 << 20)


FOREIGN = Path(__file__).parent.parent / "data" / "xml" / "dom-foreign.in.xml"


def test_nics_show_their_type_and_what_they_are_plugged_into():
    """A bridge NIC is on a bridge, not on a network of the bridge's name; each type says its source."""
    row = vmrows.vm_row(X.parse(FOREIGN.read_text()), -1, 5)
    seen = [(n["type"], n["network"], n["source"], n["source_mode"]) for n in row["nics"]]
    assert seen == [("bridge", None, "midonet", None), ("direct", None, "eth0", "vepa"), ("user", None, None, None),
                    ("ethernet", None, None, None), ("vhostuser", None, "/run/vhost/foreign.sock", "server"),
                    ("udp", None, "192.168.0.20:5555", None)]
    assert [nic_text(n) for n in row["nics"][:3]] == ["52:54:00:0f:00:01 bridge:midonet",
                                                      "52:54:00:0f:00:02 direct:eth0 (vepa)", "52:54:00:0f:00:03 user"]


def test_network_disks_show_protocol_name_and_hosts():
    """An image on a server is no path: protocol, name and servers; an nbd export without a name is
    the server's export, not '-'."""
    disks = {d["target"]: d for d in vmrows.vm_row(X.parse(FOREIGN.read_text()), -1, 5)["disks"]}
    rbd, nbd, sock = disks["vda"], disks["vdb"], disks["vdc"]
    assert (rbd["type"], rbd["protocol"], rbd["name"], rbd["hosts"], rbd["path"]) == \
           ("network", "rbd", "rbdpool/image1", ["mon1.example.org:6789", "mon2.example.org:6789"], None)
    assert rbd["source"] == "rbd://mon1.example.org:6789,mon2.example.org:6789/rbdpool/image1"
    assert (nbd["name"], nbd["source"]) == (None, "nbd://nbd.example.org:10809")
    assert (sock["hosts"], sock["source"]) == (["unix:/run/nbd/export2.sock"], "nbd://[unix:/run/nbd/export2.sock]/export2")
    assert disks["sdb"]["source"] == "http://mirror.example.org:80/isos/install.iso"
    assert [(disks[t]["type"], disks[t]["path"], disks[t]["protocol"]) for t in ("vde", "vdf")] == \
           [("block", "/dev/mapper/vg0-guest", None), ("file", "/srv/images/guest.qcow2", None)]


def test_disks_by_path_and_on_the_network_write_what_they_read():
    """DiskSpec writes a block, file or network disk back as it read it (type, path, protocol, hosts)."""
    for node in X.parse(FOREIGN.read_text()).iterfind("devices/disk"):
        spec = DiskSpec.from_element(node)
        again = vmrows.disk_fields(spec.to_element())
        assert {k: again[k] for k in ("type", "path", "protocol", "name", "hosts")} == \
               {k: vmrows.disk_fields(node)[k] for k in ("type", "path", "protocol", "name", "hosts")}


def test_listings_give_persistence_and_autostart(test_host):
    """vm list (brief and long) says what libvirt says of persistence and autostart, as vm info does."""
    conn = test_host.conn
    for name in ("kept", "plain"):
        conn.defineXML(DomainSpec(name=name, memory_mib=64).to_xml())
    conn.lookupByName("kept").setAutostart(1)
    conn.createXML(DomainSpec(name="passing", memory_mib=64).to_xml(), 0)  # transient: no definition
    want = {"kept": (True, True), "plain": (True, False), "passing": (False, None)}
    for rows in (vmrows.summaries(test_host), vmrows.detailed(test_host)):
        assert {r["name"]: (r["persistent"], r["autostart"]) for r in rows} == want
    for name, (persistent, autostart) in want.items():
        info = vmrows.vm_info(test_host, name)
        assert (info["persistent"], info["autostart"]) == (persistent, autostart)
