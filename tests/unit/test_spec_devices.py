"""VM disks and NICs as other tools make them, through the one request model of each device
(ops/devices.py) in the spec, the core and the Python API, on libvirt's test driver (fast; the
same on a real libvirtd: tests/lab/test_foreign_vms.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from virtops.base.errors import VirtopsError
from virtops.ops.devices import DiskRequest, NicRequest
from virtops.ops.vm import CreateRequest
from virtops.spec import plan as P
from virtops.spec.document import SpecError, loads, to_yaml

FOREIGN = Path(__file__).parent.parent / "data" / "xml" / "dom-foreign.in.xml"


@pytest.fixture
def host(bare_test_host, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    return bare_test_host


def _exported(host) -> tuple:
    spec, warnings = P.export(host)
    return loads(to_yaml(spec), "host.yaml"), warnings


def _without_other_devices(text: str) -> str:
    """The foreign domain without its CD-ROM and its NICs of types the spec's fields do not name."""
    from virtops.xmlmodels import doc as X
    from virtops.xmlmodels.values import NIC_TYPES

    dom = X.parse(text)
    devices = dom.find("devices")
    for node in [*devices.iterfind("disk[@device='cdrom']"),
                 *(nic for nic in devices.iterfind("interface") if nic.get("type") not in NIC_TYPES)]:
        devices.remove(node)
    return X.to_string(dom)


def test_export_writes_path_and_network_disks_and_bridge_and_direct_nics(host):
    host.conn.defineXML(_without_other_devices(FOREIGN.read_text()))
    loaded, warnings = _exported(host)
    vm, = loaded.spec.vms
    disks = {d.target: d for d in vm.disks}
    assert (disks["vda"].protocol, disks["vda"].name, disks["vda"].hosts) == \
           ("rbd", "rbdpool/image1", ["mon1.example.org:6789", "mon2.example.org:6789"])
    assert (disks["vdb"].protocol, disks["vdb"].name, disks["vdb"].hosts) == ("nbd", None, ["nbd.example.org:10809"])
    assert (disks["vde"].path, disks["vdf"].path, disks["vdf"].format) == \
           ("/dev/mapper/vg0-guest", "/srv/images/guest.qcow2", "qcow2")
    assert [(n.type, n.source, n.mode) for n in vm.nics] == [("bridge", "midonet", None), ("direct", "eth0", "vepa")]
    assert vm.xml is None and not warnings
    assert P.make_plan(host, loaded).actions == []


def test_a_vm_with_devices_the_fields_cannot_describe_is_carried_as_its_xml(host):
    """A CD-ROM and NICs of type user, ethernet, vhostuser, udp: the whole VM goes as xml:, planned
    with no changes; a change of its XML is planned as a redefinition, and apply makes it."""
    host.conn.defineXML(FOREIGN.read_text())
    loaded, warnings = _exported(host)
    vm, = loaded.spec.vms
    assert vm.xml is not None and "<interface type=\"vhostuser\">" in vm.xml and not warnings
    assert (vm.memory, vm.disks, vm.nics) == (None, [], [])
    assert P.make_plan(host, loaded).actions == []
    changed = loads(to_yaml(loaded.spec).replace("/run/vhost/foreign.sock", "/run/vhost/other.sock"), "host.yaml")
    action, = P.make_plan(host, changed).actions
    assert (action.label, [c.field for c in action.changes]) == ("vm foreign1", ["xml"])
    P.apply(host, changed)
    assert "/run/vhost/other.sock" in host.vms.dumpxml("foreign1", inactive=True)
    assert P.make_plan(host, changed).actions == []
    host.conn.lookupByName("foreign1").undefine()  # a fresh host: apply defines it as the spec says
    P.apply(host, changed)
    assert [n.type for n in host.vms.info("foreign1").nics][2:5] == ["user", "ethernet", "vhostuser"]


@pytest.mark.parametrize("kind, path", [("block", "/srv/lvm/guest-disk"), ("file", "/dev/shm/guest.img")])
def test_a_disk_whose_path_would_give_another_type_comes_back_as_it_was(host, kind, path):
    """A block device outside /dev (a node or a link elsewhere), a file under /dev: a disk by path
    would be recreated as the type its path gives, so the VM goes as xml: and keeps its disk's type."""
    attr = {"block": "dev", "file": "file"}[kind]
    host.conn.defineXML(f"<domain type='test'><name>odd</name><memory unit='MiB'>64</memory><os><type>hvm</type>"
                        f"</os><devices><disk type='{kind}' device='disk'><driver name='qemu' type='raw'/>"
                        f"<source {attr}='{path}'/><target dev='vda' bus='virtio'/></disk></devices></domain>")
    loaded, _warnings = _exported(host)
    vm, = loaded.spec.vms
    assert vm.xml is not None and f"<disk type=\"{kind}\" device=\"disk\">" in vm.xml
    assert P.make_plan(host, loaded).actions == []
    host.conn.lookupByName("odd").undefine()
    P.apply(host, loaded)
    assert f"<disk type='{kind}' device='disk'>" in host.vms.dumpxml("odd", inactive=True)


def test_references_the_host_has_already_never_refuse_the_plan_of_the_unchanged_host(host):
    """A VM whose disk is on a pool and whose NIC is on a network that are not defined: export
    then plan says no changes; only a new disk or NIC on them is refused."""
    host.conn.defineXML("<domain type='test'><name>orphan</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
                        "<os><type>hvm</type></os><devices><disk type='volume' device='disk'>"
                        "<source pool='gone' volume='sys'/><target dev='vda' bus='virtio'/></disk>"
                        "<interface type='network'><mac address='52:54:00:00:0e:01'/><source network='nonet'/>"
                        "<model type='i82559er'/></interface></devices></domain>")  # a model virtops does not make
    loaded, _warnings = _exported(host)
    assert P.make_plan(host, loaded).actions == []
    assert "  disks:\n  - volume: gone/sys\n" in to_yaml(loaded.spec)
    more = to_yaml(loaded.spec).replace("  disks:\n", "  disks:\n  - volume: gone/data\n    target: vdb\n")
    with pytest.raises(SpecError, match=r"vms\[0\]\.disks\[0\]\.volume: gone/data is no volume"):
        P.make_plan(host, loads(more, "host.yaml"))


def test_apply_makes_the_disks_and_nics_a_spec_describes_and_plans_nothing_after(host):
    text = ("vms:\n  - name: net1\n    memory: 64M\n    disks:\n"
            "      - protocol: nbd\n        hosts: [nbd.example.org:10809]\n"
            "      - protocol: rbd\n        name: rbdpool/img\n        hosts: [mon1.example.org:6789]\n"
            "    nics:\n      - bridge: br0\n        mac: 52:54:00:00:0e:10\n"
            "      - direct: eth0\n        mode: bridge\n        mac: 52:54:00:00:0e:11\n")
    loaded = loads(text, "host.yaml")
    P.apply(host, loaded)
    info = host.vms.info("net1")
    assert [(d.type, d.source) for d in info.disks] == [("network", "nbd://nbd.example.org:10809"),
                                                         ("network", "rbd://mon1.example.org:6789/rbdpool/img")]
    assert [(n.type, n.network, n.source, n.source_mode) for n in info.nics] == [
        ("bridge", None, "br0", None), ("direct", None, "eth0", "bridge")]
    assert P.make_plan(host, loaded).actions == []


@pytest.mark.parametrize("disk, field", [
    (DiskRequest(), "volume"),
    (DiskRequest(volume="a/b", path="/srv/x"), "volume"),
    (DiskRequest(path="relative/disk.img"), "path"),
    (DiskRequest(protocol="smb", hosts=["h"]), "protocol"),
    (DiskRequest(protocol="rbd", hosts=["mon1"]), "name"),
    (DiskRequest(protocol="nbd", hosts=["bad host:99999"]), "hosts"),
    (DiskRequest(protocol="nbd"), "hosts"),
    (DiskRequest(path="/srv/x", name="n"), "name"),
    (DiskRequest(path="/srv/x", format="iso9660"), "format"),
])
def test_a_disk_request_is_refused_in_one_sentence_naming_its_field(host, disk, field):
    with pytest.raises(VirtopsError) as err:
        host.vms.check_create(CreateRequest(name="r1", memory="64M", disks=[disk]))
    assert err.value.field == field and err.value.location == ("disks", 0), err.value


@pytest.mark.parametrize("nic, field", [
    (NicRequest(), "network"), (NicRequest(bridge="br0", direct="eth0"), "network"),
    (NicRequest(bridge="br0", mode="vepa"), "mode"), (NicRequest(direct="eth0", mode="loud"), "mode"),
    (NicRequest(bridge="br 0"), "bridge"), (NicRequest(direct="a-very-long-device-name"), "direct"),
    (NicRequest(network="nonet"), "network"), (NicRequest(bridge="br0", model="tulip"), "model"),
])
def test_a_nic_request_is_refused_in_one_sentence_naming_its_field(host, nic, field):
    with pytest.raises(VirtopsError) as err:
        host.vms.check_create(CreateRequest(name="r1", memory="64M", nics=[nic]))
    assert err.value.field == field and err.value.location == ("nics", 0), err.value


def test_one_model_per_device_in_every_face():
    """The spec's entries, the REST API's bodies and the core take the same classes."""
    from virtops.spec import document
    from virtops.web import api

    assert document.DiskEntry is DiskRequest and document.NicEntry is NicRequest
    assert issubclass(api.DiskBody, DiskRequest) and issubclass(api.NicBody, NicRequest)
    assert set(api.DiskAttach.model_fields) == set(DiskRequest.model_fields) | {"live", "config"}
    assert set(api.NicAttach.model_fields) == set(NicRequest.model_fields) | {"live", "config"}
    schema = document.json_schema()["$defs"]
    assert set(schema["DiskRequest"]["properties"]) == set(DiskRequest.model_fields)
    assert schema["NicRequest"]["properties"]["model"]["anyOf" if False else "enum"][:2] == ["virtio", "e1000"]


def test_a_new_nic_of_a_model_the_hypervisor_lacks_is_refused_by_the_plan_at_its_line(host):
    """The model is the core's check at plan time (a model the host has already is no change)."""
    loaded = loads("vms:\n  - name: v\n    memory: 64M\n    nics:\n      - bridge: br0\n        model: rtl9999\n",
                   "host.yaml")
    with pytest.raises(SpecError, match=r"host.yaml:6: vms\[0\]\.nics\[0\]\.model: 'rtl9999' is not a NIC model"):
        P.make_plan(host, loaded)


def test_the_cli_reaches_every_field_of_both_models():
    """attach-nic has an option per NicRequest field; every DiskRequest field is an attach-disk option
    or a KEY= of its compact syntax, which is the model's own field list (ops/vm.py option_keys)."""
    from virtops.cli.vm import vm_attach_disk, vm_attach_nic
    from virtops.ops.vm import option_keys

    nic_options = {p.name for p in vm_attach_nic.params}
    assert set(NicRequest.model_fields) <= nic_options
    disk_options = {p.name for p in vm_attach_disk.params} | set(option_keys(DiskRequest))
    assert set(DiskRequest.model_fields) <= disk_options


@pytest.mark.parametrize("args, said", [
    (["--network", "default", "--bridge", "a b"], "--bridge #1: 'a b' is not a host interface name"),
    (["--direct", "eth0,mode=loud"], "--direct #1: 'loud' is not a direct mode"),
    (["--disk", "protocol=nbd"], "--disk #1: a disk over nbd needs its server"),
    (["--disk", "test/x,format=qcow2"], "disk: 'format=qcow2' is not an option here"),
])
def test_vm_create_names_the_option_of_the_refused_device(args, said):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "virtops", "-c", "test:///default", "vm", "create", "t1",
                             "--memory", "64M", *args], capture_output=True, text=True)
    assert result.returncode == 1 and said in result.stderr, result.stderr
