"""VMs as other tools write them, on a real libvirtd: bridge, direct, user, vhost-user and socket
NICs, network disks (rbd, gluster, nbd with and without a name, iscsi, http) and disks by path,
whose pools and networks this host does not define. Listings, info and JSON say what the XML
says; export then plan says no changes."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
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


@pytest.fixture
def image_file():
    """A disk image outside any pool, where QEMU (as a stock host runs it) may open it."""
    folder = Path(f"/var/tmp/virtops-vs-{os.getpid()}")
    folder.mkdir(mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)
    image = folder / "outside.img"
    image.write_bytes(b"\0" * 1024 * 1024)
    os.chmod(image, 0o644)
    try:
        yield image
    finally:
        shutil.rmtree(folder)


def test_create_export_and_apply_vms_with_bridge_direct_path_and_network_devices(lab, image_file, tmp_path):
    """vm create makes each kind the spec models; export carries it; after the VM is gone, apply of
    that spec makes the same devices again, and a plan then says no changes."""
    name = "fvm-made"
    cli_ok(lab.uri, "vm", "create", name, "--memory", "64M", "--disk", f"path={image_file},target=vda",
           "--disk", "protocol=nbd,hosts=nbd.example.org:10809", "--disk", "protocol=rbd,name=rbd/img,hosts=mon1:6789",
           "--bridge", "br7,mac=52:54:00:1a:00:01", "--direct", "eth7,mode=private,mac=52:54:00:1a:00:02")
    conn = libvirt.open(lab.uri)
    try:
        devices = X.parse(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).find("devices")
        wanted = _devices(devices)
        assert wanted["disks"] == [("file", str(image_file), None), ("network", None, "nbd"), ("network", None, "rbd")]
        assert wanted["nics"] == [("bridge", "br7", None), ("direct", "eth7", "private")]
        spec = tmp_path / "host.yaml"
        spec.write_text(cli_ok(lab.uri, "export"))
        conn.lookupByName(name).undefine()
        applied = run_cli("apply", "-f", str(spec), "--yes", uri=lab.uri)
        assert applied.returncode == 0, applied.stderr
        again = X.parse(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).find("devices")
        assert _devices(again) == wanted
        plan = run_cli("plan", "-f", str(spec), uri=lab.uri)
        assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout + plan.stderr
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByName(name).undefine()
        conn.close()


def _devices(devices) -> dict:
    disks = [(d.get("type"), d.find("source").get("file"), d.find("source").get("protocol"))
             for d in devices.iterfind("disk")]
    nics = [(n.get("type"), n.find("source").get("bridge") or n.find("source").get("dev"), n.find("source").get("mode"))
            for n in devices.iterfind("interface")]
    return {"disks": disks, "nics": nics}
