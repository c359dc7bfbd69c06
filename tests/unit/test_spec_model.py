"""The spec file without a host: loading, refusals at file:line: field, defaults, schema, the lock;
and plan/apply on libvirt's test driver."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import libvirt
import pytest

from virtops.spec import plan as P
from virtops.base.errors import VirtopsError
from virtops.base.hostlock import host_lock
from virtops.spec.document import HostSpec, SpecError, json_schema, loads, to_yaml
from virtops.xmlmodels import doc as X

HANDBOOK = textwrap.dedent("""\
    pools:
      - name: test
        target: /var/lib/libvirt/test
        owner: root
        group: root
        mode: '0700'
        volumes:
          - name: test
            capacity: 1000M
          - name: base.qcow2
            capacity: 1G
            format: qcow2
          - name: overlay.qcow2
            capacity: 2G
            backing: test/base.qcow2
    networks:
      - name: mynetwork
        mode: route
        subnet: 192.168.200.0/24
        gateway: 192.168.200.1
        dhcp: 192.168.200.128-192.168.200.254
        hosts:
          - mac: 52:54:00:00:00:01
            ip: 192.168.200.10
            name: fixed
    vms:
      - name: vm1
        memory: 256M
        disks:
          - volume: test/test
          - volume: test/overlay.qcow2
        nics:
          - network: mynetwork
            mac: 52:54:00:AA:00:01
    """)


def refusal(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        loads(text, "host.yaml")
    return str(caught.value)


def test_handbook_spec_loads_with_sizes_in_bytes_and_defaults_filled():
    spec = loads(HANDBOOK, "host.yaml").spec
    pool = spec.pools[0].normalized()
    assert (pool.owner, pool.group, pool.mode, pool.autostart, pool.active) == (0, 0, "0700", True, True)
    assert [v.normalized().format for v in pool.volumes] == ["raw", "qcow2", "qcow2"]
    assert pool.volumes[0].capacity == 1000 * 1024**2
    net = spec.networks[0].normalized()
    assert net.hosts[0].mac == "52:54:00:00:00:01"  # YAML 1.1 would read it as a base-60 number
    vm = spec.vms[0].normalized()
    assert [d.target for d in vm.disks] == ["vda", "vdb"]
    assert vm.nics[0].mac == "52:54:00:aa:00:01"
    assert vm.memory == 256 * 1024**2


def test_unset_network_fields_mean_the_defaults_of_net_create():
    net = loads("networks:\n  - name: n\n    subnet: 10.9.0.0/24\n").spec.networks[0].normalized()
    assert (net.mode, net.gateway, net.dhcp, net.mtu, net.hosts) == ("nat", "10.9.0.1", "10.9.0.128-10.9.0.254", None, [])
    off = loads("networks:\n  - name: n\n    subnet: 10.9.0.0/24\n    dhcp: false\n").spec.networks[0].normalized()
    assert off.dhcp is False


@pytest.mark.parametrize("text, expected", [
    ("networks:\n  - name: n\n    subnet: 10.0.0.0/24\n    dhcpx: 1\n",
     "host.yaml:4: networks[0].dhcpx: is not a field here; known fields: name, mode"),
    ("pools:\n  - name: x\n    target: /var/lib/libvirt/x\n    volumes:\n      - name: v\n        capacity: 5Q\n",
     "host.yaml:6: pools[0].volumes[0].capacity: unit 'Q' is not known"),
    ("networks:\n  - name: n\n    subnet: 10.0.0.0/24\n    dhcp: 10.0.1.5-10.0.1.9\n",
     "host.yaml:4: networks[0].dhcp: 10.0.1.5 is outside the subnet 10.0.0.0/24"),
    ("vms:\n  - name: v\n    memory: 1G\n    vcpus: two\n",
     "host.yaml:4: vms[0].vcpus: 'two': input should be a valid integer"),
    ("vms:\n  - name: v\n    disks: []\n", "host.yaml:2: vms[0].memory: is required."),
    ("pools:\n  - name: x\n    target: /var/lib/libvirt/x\n    mode: 0700\n",
     "host.yaml:4: pools[0].mode: give the mode as a quoted octal string"),
    ("pools:\n  - name: x\n    type: netfs\n    target: /var/lib/libvirt/x\n", "host.yaml:2: pools[0].host: a netfs pool needs host."),
    ("networks:\n  - name: n\n    subnet: 10.0.0.0/24\n    hosts:\n      - mac: 52:54:00:00:00:01\n        ip: 10.0.0.5\n"
     "      - mac: 52:54:00:00:00:02\n        ip: 10.0.0.5\n",
     "host.yaml:8: networks[0].hosts[1].ip: 10.0.0.5 is already given to 52:54:00:00:00:01"),
    ("networks:\n  - name: a\n    subnet: 10.0.0.0/24\n  - name: a\n    subnet: 10.1.0.0/24\n",
     "host.yaml:4: networks[1].name: 'a' is given twice"),
    ("vms:\n  - name: v\n    memory: 1G\n    disks:\n      - volume: nopool\n",
     "host.yaml:5: vms[0].disks[0].volume: 'nopool' is not POOL/VOLUME"),
    ("vms:\n  - name: v\n    memory: 1G\n    nics:\n      - bridge: br0\n        mode: vepa\n",
     "host.yaml:6: vms[0].nics[0].mode: belongs to a direct NIC"),
    ("vms:\n  - name: v\n    memory: 1G\n    disks:\n      - path: /srv/a.img\n        volume: p/v\n",
     "host.yaml:6: vms[0].disks[0].volume: give exactly one of volume"),
    ("pools:\n  - name: x\n    target: /var/lib/libvirt/x\n    volumes:\n      - name: v\n        capacity: 1G\n"
     "        format: raw\n        backing: x/base\n", "host.yaml:8: pools[0].volumes[0].backing: a volume with a backing volume must be qcow2; give format: qcow2."),
    ("pools: [\n", "host.yaml:2: not valid YAML"),
    ("pools:\n  - name: x\n    name: y\n", "host.yaml:3: pools[0].name: is given twice."),
])
def test_mistakes_are_refused_at_file_line_and_field(text, expected):
    assert refusal(text).startswith(expected)


def test_rules_that_protect_new_objects_wait_for_the_host_and_skip_what_it_keeps():
    """A spec is loaded without its host, so a pool in /mnt, a label that is no SELinux context, a
    dotted DHCP host name and a backing file outside any pool load; the plan checks them against
    the host's own objects (kept=), refusing only new or changed values."""
    from virtops.base.errors import InvalidInput
    from virtops.ops.volume import check_backing

    text = ("pools:\n  - name: p\n    target: /mnt\n    label: some_label_t\n    volumes:\n      - name: o\n"
            "        capacity: 1M\n        format: qcow2\n        backing: /dev/null\n"
            "networks:\n  - name: n\n    subnet: 10.0.0.0/24\n    hosts:\n      - mac: 52:54:00:00:00:01\n"
            "        ip: 10.0.0.5\n        name: b.example.com\n  - name: v6\n    ipv6: fd00:9::/64\n")
    spec = loads(text, "host.yaml").spec
    pool, net = spec.pools[0], spec.networks[0]
    with pytest.raises(InvalidInput, match="/mnt is a system directory"):
        pool.normalized()
    assert pool.normalized(kept=pool).target == "/mnt"
    moved = pool.model_copy(update={"target": "/srv"})
    with pytest.raises(InvalidInput, match="/srv is a system directory"):
        moved.normalized(kept=pool)
    relabelled = pool.model_copy(update={"target": "/var/lib/libvirt/p", "label": "other_t"})
    with pytest.raises(InvalidInput, match="'other_t' is not an SELinux context"):
        relabelled.normalized(kept=pool)
    with pytest.raises(InvalidInput, match="'b.example.com' is not a host name"):
        net.normalized()
    assert net.normalized(kept=net).hosts[0].name == "b.example.com"
    check_backing("/dev/null", kept="/dev/null")
    with pytest.raises(InvalidInput, match="/dev/null is a file outside any pool"):
        check_backing("/dev/null")
    v6 = spec.networks[1].normalized()
    assert (v6.subnet, v6.ipv6, v6.dhcp) == (None, "fd00:9::/64", None)


def test_a_network_without_any_address_is_kept_but_never_made():
    from virtops.base.errors import InvalidInput

    bare = loads("networks:\n  - name: n\n    mode: isolated\n", "host.yaml").spec.networks[0]
    with pytest.raises(InvalidInput, match="a network in mode isolated needs an address"):
        bare.normalized()
    assert bare.normalized(kept=bare).subnet is None


def test_export_yaml_loads_back_to_the_same_spec():
    spec = loads(HANDBOOK).spec
    again = loads(to_yaml(spec)).spec
    assert again == spec
    assert "capacity: 1000M" in to_yaml(spec)  # sizes are written in virsh units


def test_json_schema_is_generated_from_the_models():
    schema = json_schema()
    assert schema["anyOf"] == [{"$ref": "#/$defs/HostSpec"}, {"$ref": "#/$defs/FleetSpec"}]
    host = schema["$defs"]["HostSpec"]
    assert set(host["properties"]) == {"pools", "networks", "vms"}
    assert host["additionalProperties"] is False
    fleet = schema["$defs"]["FleetSpec"]
    assert fleet["properties"]["hosts"]["additionalProperties"] == {"$ref": "#/$defs/HostSpec"}
    volume = schema["$defs"]["VolumeEntry"]["properties"]["capacity"]["anyOf"][0]  # a size, or none with xml:
    assert {"type": "string", "pattern": volume["anyOf"][1]["pattern"]} in volume["anyOf"]
    assert set(schema["$defs"]["NetworkEntry"]["properties"]) >= {"mode", "subnet", "dhcp", "hosts", "mtu"}


def test_export_schema_needs_no_host():
    out = subprocess.run([sys.executable, "-m", "virtops", "export", "--schema"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"title": "virtops spec (one host, or hosts: for a fleet)"' in out.stdout


def test_lock_refuses_a_second_holder_naming_its_pid(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""\
        import time
        from virtops.base.hostlock import host_lock
        with host_lock('qemu:///lab', 'apply'):
            print('held', flush=True)
            time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(VirtopsError, match=f"another apply \\(pid {holder.pid}\\) is changing qemu:///lab right "
                                               "now; wait for it to finish, then run vm attach-nic again"):
            with host_lock("qemu:///lab", "vm attach-nic", wait_s=0.2):
                pass
        with host_lock("qemu:///other", "apply", wait_s=0):  # another host is not blocked
            pass
    finally:
        holder.kill()
        holder.wait()
    with host_lock("qemu:///lab", "apply", wait_s=0):  # the kernel released the dead holder's lock
        pass


def test_the_host_lock_is_reentrant_in_its_thread_and_held_against_other_threads(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    order = []
    with host_lock("qemu:///lab", "apply"):
        with host_lock("qemu:///lab", "vm create"):  # apply runs the operations, which lock too
            other = threading.Thread(target=lambda: _hold(order, "other thread"))
            other.start()
            other.join(0.3)
            assert other.is_alive(), "another thread waits while the lock is held"
            order.append("holder")
    other.join(10)
    assert order == ["holder", "other thread"]
    with pytest.raises(VirtopsError, match="another apply in this process is changing qemu:///lab"):
        with host_lock("qemu:///lab", "apply"):
            _in_thread(lambda: _hold([], "late", wait_s=0.1))


def _hold(order: list, name: str, wait_s: float = 10) -> None:
    with host_lock("qemu:///lab", name, wait_s=wait_s):
        order.append(name)


def _in_thread(call) -> None:
    """Run `call` in another thread and raise what it raised."""
    import threading

    raised = []

    def run():
        try:
            call()
        except BaseException as err:  # noqa: BLE001 (handed back to the test's thread)
            raised.append(err)
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(10)
    if raised:
        raise raised[0]


def test_plan_and_apply_on_the_test_driver(test_host, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    text = textwrap.dedent("""\
        pools:
          - name: test
            target: /var/lib/libvirt/test
            volumes:
              - name: base.qcow2
                capacity: 1G
                format: qcow2
              - name: overlay.qcow2
                capacity: 1G
                backing: test/base.qcow2
              - name: test
                capacity: 1000M
        """)  # networks: the test driver has no inactive network XML; they are proved on lab hosts
    loaded = loads(text, "host.yaml")
    first = P.make_plan(test_host, loaded)
    assert [(a.verb, a.label) for a in first.actions] == [
        ("create", "pool test"), ("create", "volume test/base.qcow2"), ("create", "volume test/overlay.qcow2"),
        ("create", "volume test/test")]
    P.apply(test_host, loaded)
    assert P.make_plan(test_host, loaded).actions == []
    # A reference to something neither in the spec nor on the host is refused at its line.
    bad = loads(text + "vms:\n  - name: v\n    memory: 64M\n    disks:\n      - volume: test/nope\n", "host.yaml")
    with pytest.raises(SpecError, match=r"host.yaml:17: vms\[0\].disks\[0\].volume: test/nope is no volume"):
        P.make_plan(test_host, bad)


def test_empty_spec_is_a_valid_host_spec():
    assert loads("", "host.yaml").spec == HostSpec()


def _docs_block(language: str, index: int = 0) -> str:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "spec.md").read_text()
    return text.split(f"```{language}\n")[index + 1].split("\n```")[0]


def test_the_schema_in_the_docs_is_the_generated_one():
    import json

    assert json.loads(_docs_block("json")) == json_schema()


def test_the_handbook_example_in_the_docs_loads():
    spec = loads(_docs_block("yaml"), "docs/spec.md").spec
    assert [v.normalized().format for v in spec.pools[0].volumes] == ["raw", "qcow2", "qcow2"]
    assert spec.vms[0].disks[1].volume == "test/test"


def test_vm_settings_plan_live_on_a_stopped_vm_and_refuse_beyond_the_host(bare_test_host, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    test_host = bare_test_host
    test_host.conn.defineXML("<domain type='test'><name>v</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
                             "<os><type>hvm</type></os></domain>")
    loaded = loads("vms:\n  - name: v\n    memory: 128M\n    vcpus: 2\n    autostart: true\n", "host.yaml")
    plan = P.make_plan(test_host, loaded)
    (action,) = plan.actions
    assert (action.verb, action.mode, action.disruptive) == ("update", "live", False)
    assert {c.field for c in action.changes} == {"memory", "vcpus", "autostart"}
    assert [label for label, _ in action.steps] == ["set autostart, memory, vcpus of vm v"]
    too_much = loads("vms:\n  - name: v\n    memory: 100T\n", "host.yaml")
    with pytest.raises(SpecError, match=r"host.yaml:3: vms\[0\].memory: 100T is more than the host's 8192 MiB"):
        P.make_plan(test_host, too_much)


def test_pxe_in_a_spec_creates_exports_and_changes_the_boot_order(bare_test_host, tmp_path, monkeypatch):
    """pxe: the VM boots from the network, then its first disk (vm create --pxe); the export says so,
    a plan of it changes nothing, and pxe: false is a live change of its definition's boot order."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    host = bare_test_host
    host.conn.networkDefineXML("<network><name>lan</name><ip address='192.168.210.1' netmask='255.255.255.0'/></network>").create()
    order = lambda: [b.get("dev") for b in X.parse(host.conn.lookupByName("p").XMLDesc(0)).iterfind("os/boot")]  # noqa: E731
    loaded = loads("vms:\n  - name: p\n    memory: 64M\n    pxe: true\n    nics: [{network: lan}]\n", "host.yaml")
    (action,) = P.make_plan(host, loaded).actions
    assert ("pxe", True) in [(c.field, c.new) for c in action.changes]
    P.apply(host, loaded)
    assert order() == ["network", "hd"]
    exported, _notes = P.export(host)
    assert exported.vms[0].pxe is True
    assert P.make_plan(host, loads(to_yaml(exported), "again.yaml")).actions == []
    off = loads("vms:\n  - name: p\n    memory: 64M\n    nics: [{network: lan}]\n", "host.yaml")
    (action,) = P.make_plan(host, off).actions
    assert (action.verb, action.mode, [(c.field, c.old, c.new) for c in action.changes]) == ("update", "live", [("pxe", True, False)])
    P.apply(host, off)
    assert order() == ["hd"]
    none = loads("vms:\n  - name: q\n    memory: 64M\n    pxe: true\n", "host.yaml")
    with pytest.raises(SpecError, match="pxe: boots from the network, so the VM needs a NIC"):
        P.make_plan(host, none)


def test_stopping_a_network_running_guests_use_needs_yes_and_says_what_it_costs(tmp_path, monkeypatch):
    """libvirt's test driver runs VM `test` with a NIC on `default`: a spec that stops `default` plans
    a disruptive action (apply refuses it without --yes); with --yes it stops it through the core's force."""
    from virtops.host import Host

    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    host = Host("test:///default")
    assert host.networks.running_nics("default")
    loaded = loads(textwrap.dedent("""\
        networks:
          - {name: default, mode: nat, bridge: virbr0, subnet: 192.168.122.0/24, gateway: 192.168.122.1,
             dhcp: 192.168.122.2-192.168.122.254, active: false}
        """))
    plan = P.make_plan(host, loaded)
    (action,) = plan.actions
    assert action.disruptive and "cuts off the NICs of running guest(s) test" in action.notes[0]
    with pytest.raises(P.NeedsConfirmation):
        P.apply(host, loaded)
    assert host.networks.info("default").active
    P.apply(host, loaded, yes=True)
    assert not host.networks.info("default").active
    host.close()  # the test driver's default state lasts while a connection to it is open


XML_SPEC = textwrap.dedent("""\
    pools:
      - name: lun
        active: false
        autostart: false
        xml: |
          <pool type='iscsi'>
            <name>lun</name>
            <source><host name='iscsi.example.invalid'/><device path='iqn.2026-12.invalid.example:one'/></source>
            <target><path>/dev/disk/by-path</path></target>
          </pool>
    networks:
      - name: direct1
        active: false
        xml: |
          <network>
            <name>direct1</name>
            <forward mode='vepa'><interface dev='eth9'/></forward>
          </network>
    """)


def test_objects_given_as_xml_are_defined_then_compared_after_libvirts_formatting(test_host, tmp_path, monkeypatch):
    """Pools and networks the fields cannot describe, carried as libvirt's XML (spec/rawxml.py):
    created as given, then 'no changes' whatever the quoting, and a real change is an update."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    loaded = loads(XML_SPEC, "host.yaml")
    first = P.make_plan(test_host, loaded)
    assert [(a.verb, a.label) for a in first.actions] == [("create", "pool lun"), ("create", "network direct1")]
    P.apply(test_host, loaded)
    assert test_host.conn.storagePoolLookupByName("lun").XMLDesc(0).startswith("<pool type='iscsi'>")
    assert test_host.conn.networkLookupByName("direct1").autostart() == 1
    assert P.make_plan(test_host, loaded).actions == []
    requoted = loads(XML_SPEC.replace("'", '"'), "host.yaml")  # another layout of the same XML
    assert P.make_plan(test_host, requoted).actions == []
    exported, _warnings = P.export(test_host)
    again = loads(to_yaml(exported), "export.yaml")
    assert P.make_plan(test_host, again).actions == []
    assert {p.name for p in again.spec.pools if p.xml} == {"lun"}
    changed = loads(XML_SPEC.replace("eth9", "eth8"), "host.yaml")
    [update] = P.make_plan(test_host, changed).actions
    assert (update.verb, update.label, update.changes[0].text()) == (
        "update", "network direct1", 'xml: <forward dev="eth9" mode="vepa"> -> <forward dev="eth8" mode="vepa">')


@pytest.mark.parametrize("change, expected", [
    (("    active: false\n    xml: |", "    active: false\n    mode: route\n    xml: |"),
     "host.yaml:14: networks[0].mode: belongs in the XML of an entry given as xml:"),
    (("<name>direct1</name>", "<name>other</name>"),
     "host.yaml:14: networks[0].xml: names the network 'other', but the entry's name is 'direct1'"),
    (("<pool type='iscsi'>", "<network>", "</pool>", "</network>"), "host.yaml:5: pools[0].xml: is a <network> document"),
    (("<forward mode='vepa'>", "<forward mode='sideways'>"),
     "host.yaml:14: networks[0].xml: is no network libvirt accepts (Element network failed to validate content)"),
    (("</network>", "</networkx>"), "host.yaml:14: networks[0].xml: is not well-formed XML"),
])
def test_xml_entries_are_refused_at_their_line(change, expected):
    text = XML_SPEC
    for old, new in zip(change[::2], change[1::2]):
        text = text.replace(old, new)
    assert refusal(text).startswith(expected)


DEVICE_POOLS = textwrap.dedent("""\
    pools:
      - name: guests
        type: logical
        source_name: vg_guests
        device: /dev/vdc
      - name: wholedisk
        type: disk
        device: /dev/vdd
        format: gpt
        autostart: false
    """)


def test_logical_and_disk_pools_are_defined_and_started_never_built(test_host, tmp_path, monkeypatch):
    """On libvirt's test driver: this machine has no spare disk or volume group for a lab host,
    and building either pool would write the device (vgcreate, a partition table)."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    built = []
    monkeypatch.setattr(libvirt.virStoragePool, "build", lambda pool, flags=0: built.append(pool.name()))
    loaded = loads(DEVICE_POOLS, "host.yaml")
    assert [(p.target, p.format) for p in (e.normalized() for e in loaded.spec.pools)] == [
        ("/dev/vg_guests", "lvm2"), ("/dev", "gpt")]
    assert [(a.verb, a.label) for a in P.make_plan(test_host, loaded).actions] == [
        ("create", "pool guests"), ("create", "pool wholedisk")]
    P.apply(test_host, loaded)
    assert built == []
    assert P.make_plan(test_host, loaded).actions == []
    exported, _warnings = P.export(test_host)
    guests = next(p for p in exported.pools if p.name == "guests")
    assert (guests.type, guests.source_name, guests.device, guests.xml) == ("logical", "vg_guests", "/dev/vdc", None)
    assert P.make_plan(test_host, loaded).actions == []


@pytest.mark.parametrize("entry, expected", [
    ("type: logical", "pools[0].source_name: a logical pool needs source_name."),
    ("type: logical\n    source_name: vg0\n    target: /dev/other",
     "pools[0].target: a logical pool's target is /dev/vg0, where its device nodes appear"),
    ("type: disk\n    device: /dev/vdd\n    format: ntfs", "pools[0].format: 'ntfs' is not a format of a disk pool"),
    ("type: disk\n    device: /srv/disk.img", "pools[0].device: '/srv/disk.img' is not a device path"),
    ("target: /var/lib/libvirt/p\n    source_name: vg0", "pools[0].source_name: applies only to logical pools"),
])
def test_device_pool_mistakes_are_refused(entry, expected):
    assert expected in refusal(f"pools:\n  - name: p\n    {entry}\n")


def test_volumes_of_formats_virtops_does_not_make_are_carried_as_xml(test_host, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    pool = test_host.conn.storagePoolDefineXML("<pool type='dir'><name>store</name><target><path>/var/lib/libvirt/"
                                               "store</path></target></pool>", 0)
    pool.create(0)
    pool.createXML("<volume><name>appliance.vmdk</name><capacity unit='M'>3</capacity>"
                   "<target><format type='vmdk'/></target></volume>", 0)
    exported, warnings = P.export(test_host)
    assert not [w for w in warnings if "appliance.vmdk" in w]
    loaded = loads(to_yaml(exported), "export.yaml")
    [vmdk] = [v for p in loaded.spec.pools for v in p.volumes if v.name == "appliance.vmdk"]
    assert "<format type=\"vmdk\"/>" in vmdk.xml and "<key>" not in vmdk.xml and vmdk.capacity is None
    assert P.make_plan(test_host, loaded).actions == []
    pool.storageVolLookupByName("appliance.vmdk").delete(0)
    assert [(a.verb, a.label) for a in P.make_plan(test_host, loaded).actions] == [
        ("create", "volume store/appliance.vmdk")]
    P.apply(test_host, loaded)
    assert P.make_plan(test_host, loaded).actions == []
    bigger = loads(to_yaml(exported).replace(">3145728<", ">4194304<"), "export.yaml")
    [grow] = P.make_plan(test_host, bigger).actions
    assert (grow.verb, grow.mode) == ("update", "impossible")
    missing = to_yaml(exported).replace("  - name: appliance.vmdk\n", "  - name: appliance.vmdk\n    capacity: 1M\n")
    assert "volumes[0].capacity: belongs in the XML of an entry given as xml:" in refusal(missing)


def test_a_network_with_what_the_fields_do_not_set_is_exported_as_xml(test_host, tmp_path, monkeypatch):
    """A DNS host entry or a port group would be lost by the fields on a fresh host: export gives
    such a network as libvirt's XML; a network the fields describe stays in fields."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    conn = test_host.conn
    conn.networkDefineXML("<network><name>dnsful</name><bridge name='vbr7'/><dns><host ip='10.7.0.9'>"
                          "<hostname>printer</hostname></host></dns><ip address='10.7.0.1' prefix='24'/></network>")
    conn.networkDefineXML("<network><name>plain</name><forward mode='nat'><nat><port start='1024' end='65535'/>"
                          "</nat></forward><bridge name='vbr8'/><ip address='10.8.0.1' prefix='24'/></network>")
    exported, _warnings = P.export(test_host)
    by_name = {n.name: n for n in exported.networks}
    assert "<hostname>printer</hostname>" in by_name["dnsful"].xml
    assert (by_name["plain"].xml, by_name["plain"].subnet) == (None, "10.8.0.0/24")
    assert P.make_plan(test_host, loads(to_yaml(exported), "export.yaml")).actions == []
