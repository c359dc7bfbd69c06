"""Domain XML that virtops emits validates against libvirt's domain.rng; option parsing; checks
of `vm create` and device changes on libvirt's test driver (refusals leave the host unchanged)."""
from __future__ import annotations

import libvirt
import pytest

from tests.helpers import host_state
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec, KernelBoot, NicSpec
from virtops.base.errors import InvalidInput, VirtopsError
from virtops.ops.vm import (CreateRequest, next_target, normalize_mac, parse_boot_option, parse_disk_option,
                        parse_network_option, parse_new_disk_option, validate_device)


# -- XML against the schema ---------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    DomainSpec(name="plain"),
    DomainSpec(name="kernel", memory_kib=262144, vcpus=2, virt_type="kvm",
               boot=KernelBoot(kernel="/k", initrd="/i", cmdline="console=ttyS0 virtops.ping=1.1.1.1,2.2.2.2")),
    DomainSpec(name="full", boot_devices=["cdrom", "hd"], disks=[
        DiskSpec(target="vda", pool="test", volume="sys.qcow2", format="qcow2", cache="none", serial="SYS1"),
        DiskSpec(target="vdb", pool="test", volume="test", readonly=True, shareable=True),
        DiskSpec(target="sda", path="/srv/x.img", bus="scsi"),
        DiskSpec(target="sdb", pool="iso", volume="d.iso", bus="sata", device="cdrom"),
    ], nics=[NicSpec(network="mynetwork", mac="52:54:00:aa:bb:cc"), NicSpec(network="default", model="e1000")]),
])
def test_emitted_domain_xml_validates(spec):
    root = spec.to_element()  # raises when the schema disagrees
    X.validate(X.parse(spec.to_xml()), "domain")
    assert root.get("type") == spec.virt_type
    assert root.find("features/acpi") is not None
    assert root.find("devices/serial") is not None and root.find("devices/console") is not None


def test_disk_and_nic_round_trip_through_xml():
    disk = DiskSpec(target="vdb", pool="test", volume="test", cache="none", readonly=True, serial="S1")
    assert DiskSpec.from_element(disk.to_element()).model_dump() == disk.model_dump()
    nic = NicSpec(network="mynetwork", mac="52:54:00:01:02:03", model="e1000")
    assert NicSpec.from_element(nic.to_element()).model_dump() == nic.model_dump()
    validate_device(disk.to_element())
    validate_device(nic.to_element())


def test_volume_disk_is_by_pool_and_volume():
    root = DiskSpec(target="vda", pool="test", volume="test").to_element()
    assert root.get("type") == "volume"
    assert root.find("source").attrib == {"pool": "test", "volume": "test"}


# -- option parsing ----------------------------------------------------------------------------
def test_parse_options():
    disk = parse_disk_option("test/test,bus=scsi,cache=none,readonly=on,serial=AB1")
    assert (disk.volume, disk.bus, disk.cache, disk.readonly, disk.serial) == ("test/test", "scsi", "none", True, "AB1")
    by_path = parse_disk_option("path=/dev/vg0/data,format=qcow2,target=vdc")
    assert (by_path.kind, by_path.path, by_path.format, by_path.target) == ("path", "/dev/vg0/data", "qcow2", "vdc")
    rbd = parse_disk_option("protocol=rbd,name=pool/img,hosts=mon1:6789,hosts=mon2:6789,bus=scsi")
    assert (rbd.kind, rbd.protocol, rbd.name, rbd.hosts, rbd.bus) == ("network", "rbd", "pool/img", ["mon1:6789", "mon2:6789"], "scsi")
    assert parse_new_disk_option("test:10G").size == 10 * 1024**3
    assert parse_new_disk_option("test:1000M:raw").format == "raw"
    nic = parse_network_option("mynetwork,mac=52:54:00:AA:BB:CC,model=e1000")
    assert (nic.network, nic.mac, nic.model) == ("mynetwork", "52:54:00:AA:BB:CC", "e1000")
    direct = parse_network_option("eth0,mode=bridge", "direct")
    assert (direct.type, direct.source, direct.mode) == ("direct", "eth0", "bridge")
    assert parse_network_option("br0", "bridge").type == "bridge"
    boot = parse_boot_option("kernel=/b/vmlinuz,initrd=/b/initrd.img,cmdline=console=ttyS0 virtops.ping=1.1.1.1,2.2.2.2")
    assert boot.cmdline == "console=ttyS0 virtops.ping=1.1.1.1,2.2.2.2" and boot.initrd == "/b/initrd.img"


@pytest.mark.parametrize("func,text,field", [
    (parse_disk_option, "test", "disk"), (parse_disk_option, "test/test,colour=red", "disk"),
    (parse_disk_option, "test/test,readonly=maybe", "disk readonly"),
    (parse_new_disk_option, "test", "new_disks"), (parse_new_disk_option, "test:lots", "new_disks"),
    (parse_network_option, ",model=e1000", "network"), (parse_network_option, "default,mode=vepa", "network"),
    (parse_disk_option, "test/test,format=qcow2", "disk"), (parse_boot_option, "initrd=/x", "boot"),
])
def test_parse_refusals_name_the_field(func, text, field):
    with pytest.raises(InvalidInput) as err:
        func(text)
    assert err.value.field == field


def test_macs_and_targets():
    assert normalize_mac("52-54-00-AA-BB-CC") == "52:54:00:aa:bb:cc"
    for bad in ("52:54:00:aa:bb", "zz:54:00:aa:bb:cc", "01:00:5e:00:00:01"):
        with pytest.raises(InvalidInput):
            normalize_mac(bad)
    assert next_target("virtio", {"vda"}) == "vdb"
    assert next_target("sata", set()) == "sda"
    assert next_target("virtio", {f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"}) == "vdaa"


# -- the core on libvirt's test driver ----------------------------------------------------------
@pytest.fixture
def seeded(test_host):
    conn = test_host.conn
    pool = X.element("pool", type="dir")
    X.sub(pool, "name", "test")
    X.sub(X.sub(pool, "target"), "path", "/var/lib/libvirt/test")
    conn.storagePoolCreateXML(X.to_string(pool), 0)
    for name in ("sys", "data", "spare"):
        vol = X.element("volume")
        X.sub(vol, "name", name)
        X.sub(vol, "capacity", 1048576000, unit="bytes")
        X.sub(X.sub(vol, "target"), "format", type="raw")
        conn.storagePoolLookupByName("test").createXML(X.to_string(vol), 0)
    net = X.element("network")
    X.sub(net, "name", "mynetwork")
    X.sub(net, "ip", address="192.168.200.1", netmask="255.255.255.0")
    conn.networkCreateXML(X.to_string(net))
    return test_host


def _req(name="vm1", **kw) -> CreateRequest:
    return CreateRequest(name=name, memory=kw.pop("memory", "256M"), **kw)


def test_create_then_refusals_leave_host_unchanged(seeded):
    vms = seeded.vms
    info = vms.create(_req(disks=[parse_disk_option("test/sys")], nics=[parse_network_option("mynetwork")]))
    assert [d.target for d in info.disks] == ["vda"] and info.nics[0].mac.startswith("52:54:00:")
    used_mac = info.nics[0].mac
    before = host_state(seeded.conn)
    refusals = [
        (_req("vm1"), "name"),
        (_req("bad/name"), "name"),
        (_req("vm2", memory="64G"), "memory"),
        (_req("vm2", vcpus=64), "vcpus"),
        (_req("vm2", disks=[parse_disk_option("nopool/x")]), "volume"),
        (_req("vm2", disks=[parse_disk_option("test/nothing")]), "volume"),
        (_req("vm2", disks=[parse_disk_option("test/sys")]), "volume"),
        (_req("vm2", nics=[parse_network_option("nonet")]), "network"),
        (_req("vm2", nics=[parse_network_option(f"mynetwork,mac={used_mac}")]), "mac"),
        (_req("vm2", nics=[parse_network_option("mynetwork,model=tulip9000")]), "model"),
        (_req("vm2", new_disks=[parse_new_disk_option("test:1G"), parse_new_disk_option("nopool:1G")]), "pool"),
        (_req("vm2", boot=KernelBoot(kernel="/k"), import_disk=True), "boot"),
    ]
    for request, field in refusals:
        with pytest.raises(VirtopsError) as err:
            vms.create(request)
        assert field in str(err.value), (field, str(err.value))
        assert host_state(seeded.conn) == before, field


def test_pxe_boots_from_the_network_then_the_disk(seeded):
    """`vm create --pxe`: <boot dev='network'/> before the first disk; it needs a NIC and is one way
    to boot among kernel, CD-ROM and import; autostart is set with the definition."""
    vms = seeded.vms
    before = host_state(seeded.conn)
    for request, field, words in (
        (_req("pxe1", pxe=True), "pxe", "needs a NIC"),
        (_req("pxe1", pxe=True, cdrom="test/spare", nics=[parse_network_option("mynetwork")]), "boot", "one way to boot"),
        (_req("pxe1", pxe=True, boot=KernelBoot(kernel="/k"), nics=[parse_network_option("mynetwork")]), "boot",
         "one way to boot"),
    ):
        with pytest.raises(InvalidInput) as err:
            vms.create(request)
        assert err.value.field == field and words in str(err.value), str(err.value)
        assert host_state(seeded.conn) == before
    vms.create(_req("pxe1", pxe=True, autostart=True, disks=[parse_disk_option("test/spare")],
                    nics=[parse_network_option("mynetwork")]))
    dom = seeded.conn.lookupByName("pxe1")
    root = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert [b.get("dev") for b in root.iterfind("os/boot")] == ["network", "hd"]
    assert dom.autostart() == 1


def test_shared_volume_readonly_or_shareable(seeded):
    vms = seeded.vms
    vms.create(_req("a", disks=[parse_disk_option("test/data,readonly=on")]))
    vms.create(_req("b", disks=[parse_disk_option("test/data,readonly=on")]))
    vms.create(_req("c", disks=[parse_disk_option("test/sys,shareable=on")]))
    vms.create(_req("d", disks=[parse_disk_option("test/sys,shareable=on")]))
    with pytest.raises(InvalidInput):
        vms.create(_req("e", disks=[parse_disk_option("test/data")]))


def test_device_refusals_leave_host_unchanged(seeded):
    """The test driver cannot attach devices (lab tests do that); every refusal comes before libvirt is asked."""
    vms = seeded.vms
    info = vms.create(_req(disks=[parse_disk_option("test/sys"), parse_disk_option("test/data")],
                           nics=[parse_network_option("mynetwork,model=e1000")]))
    mac = info.nics[0].mac
    before = host_state(seeded.conn)
    for call, field in [
        (lambda: vms.attach_disk("vm1", "test/data"), "volume"),
        (lambda: vms.attach_disk("vm1", "test/nothing"), "volume"),
        (lambda: vms.attach_disk("vm1", "nopool/x"), "volume"),
        (lambda: vms.attach_disk("vm1", "test/spare", target="vdb"), "target"),
        (lambda: vms.attach_disk("vm1", "test/spare", target="sdb"), "target"),
        (lambda: vms.attach_disk("vm1", "test/spare", bus="floppy"), "bus"),
        (lambda: vms.attach_disk("vm1", "test/spare", live=True), "live"),
        (lambda: vms.attach_disk("novm", "test/sys"), "novm"),
        (lambda: vms.attach_nic("vm1", "mynetwork", mac=mac), "mac"),
        (lambda: vms.attach_nic("vm1", "mynetwork", mac="52:54:00:zz:00:00"), "mac"),
        (lambda: vms.attach_nic("vm1", "mynetwork", model="tulip9000"), "model"),
        (lambda: vms.attach_nic("vm1", "nonet"), "network"),
        (lambda: vms.detach_disk("vm1", "vdz"), "target"),
        (lambda: vms.detach_nic("vm1", "52:54:00:00:00:01"), "mac"),
    ]:
        with pytest.raises(VirtopsError) as err:
            call()
        assert field in str(err.value), (field, str(err.value))
        assert host_state(seeded.conn) == before, field


def test_new_disk_is_removed_when_a_later_step_fails(seeded, monkeypatch):
    vms = seeded.vms
    before = host_state(seeded.conn)

    def fail(*_a, **_k):
        raise libvirt.libvirtError("boom")

    monkeypatch.setattr(libvirt.virDomain, "create", fail)
    with pytest.raises(VirtopsError) as err:
        vms.create(_req(new_disks=[parse_new_disk_option("test:100M")], start=True))
    assert "nothing was kept (undone: defined VM" in str(err.value) and "created volume test/" in str(err.value)
    assert host_state(seeded.conn) == before


def test_delete_with_storage_and_lifecycle(seeded):
    vms = seeded.vms
    vms.create(_req(new_disks=[parse_new_disk_option("test:100M:raw")], start=True))
    with pytest.raises(VirtopsError, match="give force=True to stop it at once"):
        vms.delete("vm1")
    vms.suspend("vm1")
    assert vms.info("vm1").state == "paused"
    vms.resume("vm1")
    result = vms.delete("vm1", remove_storage=True, force=True)
    assert result.destroyed and result.removed_volumes == ["test/vm1-vda.raw"]
    assert "vm1-vda.raw" not in seeded.conn.storagePoolLookupByName("test").listVolumes()


def test_a_control_character_anywhere_in_a_request_is_one_sentence():
    """A NUL byte cannot even reach libvirt (libvirt-python raises ValueError): the request is
    refused first, placed where it is (the REST API's stateful fuzzing found this one)."""
    from virtops.host import Host
    from virtops.ops.vm import CreateRequest, DiskRequest, NicRequest

    host = Host("test:///default")
    for request, where in ((CreateRequest(name="c1", memory="64M", disks=[DiskRequest(volume="p\x00/v")]),
                            ("disks", 0)),
                           (CreateRequest(name="c1", memory="64M", nics=[NicRequest(network="n\x00")]), ("nics", 0))):
        with pytest.raises(InvalidInput) as err:
            host.vms.create(request)
        assert err.value.location == where and "control character" in str(err.value)
    with pytest.raises(InvalidInput):
        host.vms.attach_disk("test", "p\x00/v")
    host.close()
