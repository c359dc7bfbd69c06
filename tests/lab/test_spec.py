"""The YAML spec on real libvirtd: export, plan, apply on lab hosts with a rich configuration."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import libvirt
import pytest
import yaml

from tests.helpers import delete_everything, dir_pool_element, fresh_lab, network_element, volume_element, host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec, KernelBoot, NicSpec
from virtops.lab.labhost import Lab

GiB = 1024**3
MiB = 1024**2


@pytest.fixture(scope="module")
def source(guest_image):
    """Several pools, a dozen volumes with qcow2 backing chains, networks of four modes with
    static hosts, VMs with several disks and NICs; all made with libvirt directly. The VMs boot
    the test guest's kernel: `vm create` (and so `apply`) refuses a kernel that is not a file QEMU
    can read on the host."""
    lab = fresh_lab(f"spec-src-{os.getpid() % 10000}")
    conn = libvirt.open(lab.uri)
    try:
        for name in ("images", "data", "spare"):
            pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(name)), 0)
            pool.build(0)
            pool.create(0)
            pool.setAutostart(int(name != "spare"))
        images = conn.storagePoolLookupByName("images")
        images.createXML(X.to_string(volume_element("base.qcow2", GiB, "qcow2")), 0)
        base = images.storageVolLookupByName("base.qcow2").path()
        images.createXML(X.to_string(volume_element("mid.qcow2", GiB, "qcow2", backing=base)), 0)
        mid = images.storageVolLookupByName("mid.qcow2").path()
        for i in range(4):
            images.createXML(X.to_string(volume_element(f"linked-{i}.qcow2", 2 * GiB, "qcow2", backing=mid)), 0)
        data = conn.storagePoolLookupByName("data")
        for i in range(5):
            data.createXML(X.to_string(volume_element(f"disk-{i}.raw", 64 * MiB, "raw")), 0)
        data.createXML(X.to_string(volume_element("full.raw", 8 * MiB, "raw", allocation=8 * MiB)), 0)
        for name, mode, third in (("natnet", "nat", 50), ("routed", "route", 51), ("isolated", None, 52),
                                  ("opennet", "open", 53)):
            net = conn.networkDefineXML(X.to_string(network_element(name, mode, third)))
            net.setAutostart(int(name != "opennet"))
            net.create()
        for i in range(2):
            spec = DomainSpec(name=f"vm{i}", boot=KernelBoot(kernel=str(guest_image.kernel), cmdline="console=ttyS0"),
                              disks=[DiskSpec(target="vda", pool="images", volume=f"linked-{i}.qcow2", format="qcow2"),
                                     DiskSpec(target="vdb", pool="data", volume=f"disk-{i}.raw", cache="none"),
                                     DiskSpec(target="sda", pool="data", volume="disk-4.raw", bus="scsi",
                                              readonly=True)],
                              nics=[NicSpec(network="natnet", mac=f"52:54:00:00:0b:0{i}"),
                                    NicSpec(network="isolated", mac=f"52:54:00:00:0c:0{i}", model="e1000")])
            conn.defineXML(spec.to_xml())
    finally:
        conn.close()
    yield lab
    lab.down()


@pytest.fixture(scope="module")
def target():
    lab = fresh_lab(f"spec-dst-{os.getpid() % 10000}")
    yield lab
    lab.down()


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "host.yaml"
    out = run_cli("export", "-o", str(path), uri=source.uri)
    assert out.returncode == 0, out.stderr
    return path


def _plan_json(uri: str, path, *extra: str) -> dict:
    out = run_cli("plan", "-f", str(path), "--json", *extra, uri=uri)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _state(lab: Lab) -> dict:
    conn = libvirt.open(lab.uri)
    try:
        return host_state(conn)
    finally:
        conn.close()


# -- export, plan, apply ----------------------------------------------------------------------------
def test_export_describes_everything_and_plan_right_after_shows_nothing(source, exported):
    spec = yaml.safe_load(exported.read_text())
    assert [p["name"] for p in spec["pools"]] == ["data", "images", "spare"]
    assert sum(len(p.get("volumes", [])) for p in spec["pools"]) == 12
    images = next(p for p in spec["pools"] if p["name"] == "images")
    assert {"name": "mid.qcow2", "capacity": "1G", "format": "qcow2", "backing": "images/base.qcow2"} in images["volumes"]
    data = next(p for p in spec["pools"] if p["name"] == "data")
    assert {"name": "full.raw", "capacity": "8M", "allocation": "8M", "format": "raw"} in data["volumes"]
    assert {n["name"]: n.get("mode", "nat") for n in spec["networks"]} == {
        "default": "nat", "natnet": "nat", "routed": "route", "isolated": "isolated", "opennet": "open"}
    vm0 = next(v for v in spec["vms"] if v["name"] == "vm0")
    assert [d["target"] for d in vm0["disks"]] == ["vda", "vdb", "sda"] and len(vm0["nics"]) == 2
    plan = _plan_json(source.uri, exported)
    assert plan["actions"] == [] and plan["kept"] == []


def test_apply_to_a_fresh_host_gives_the_same_spec_and_a_second_apply_plans_nothing(target, exported, tmp_path):
    first = run_cli("apply", "-f", str(exported), uri=target.uri)
    assert first.returncode == 0, first.stderr
    again = tmp_path / "again.yaml"
    assert run_cli("export", "-o", str(again), uri=target.uri).returncode == 0
    assert again.read_text() == exported.read_text()
    before = _state(target)
    second = run_cli("apply", "-f", str(exported), uri=target.uri)
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout
    assert _state(target) == before


def test_apply_killed_midway_is_finished_by_the_next_apply(target, exported, tmp_path):
    wipe = libvirt.open(target.uri)
    delete_everything(wipe)
    wipe.close()
    assert [k for k in _state(target)] == []
    argv = [sys.executable, "-m", "virtops", "-c", target.uri, "apply", "-f", str(exported)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conn = libvirt.open(target.uri)
    try:
        deadline = time.monotonic() + 120
        # Persistent: creating a pool first probes its directory with a throwaway transient pool.
        persistent = libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT
        while not conn.listAllStoragePools(persistent) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = host_state(conn)
    finally:
        conn.close()
    assert proc.returncode == -signal.SIGKILL
    assert any(k.startswith("pool/") for k in partial) and not any(k.startswith("dom/") for k in partial)
    finish = run_cli("apply", "-f", str(exported), uri=target.uri)
    assert finish.returncode == 0, finish.stderr
    assert _plan_json(target.uri, exported)["actions"] == []
    again = tmp_path / "again.yaml"
    assert run_cli("export", "-o", str(again), uri=target.uri).returncode == 0
    assert again.read_text() == exported.read_text()


# -- drift, refusals, the lock -------------------------------------------------------------------------
def test_drift_made_with_libvirt_shows_in_plan_and_apply_undoes_it(source, exported):
    conn = libvirt.open(source.uri)
    try:
        net = conn.networkLookupByName("natnet")
        xml = net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
        conn.networkDefineXML(xml.replace("<bridge ", "<mtu size='9000'/><bridge ", 1))  # a field the spec leaves unset
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
                   "<host mac='52:54:00:00:99:99' ip='10.50.0.99'/>", flags)
        conn.storagePoolLookupByName("data").storageVolLookupByName("disk-3.raw").resize(128 * MiB)
        conn.storagePoolLookupByName("spare").setAutostart(1)
    finally:
        conn.close()
    plan = _plan_json(source.uri, exported)
    by_label = {f"{a['kind']} {a['name']}": a for a in plan["actions"]}
    assert set(by_label) == {"network natnet", "volume data/disk-3.raw", "pool spare"}
    natnet = by_label["network natnet"]
    assert {"field": "mtu", "from": 9000, "to": None} in natnet["changes"]
    assert {"field": "hosts", "from": "52:54:00:00:99:99 10.50.0.99", "to": None} in natnet["changes"]
    assert natnet["mode"] == "needs-restart" and natnet["needs_yes"]
    assert by_label["volume data/disk-3.raw"]["mode"] == "impossible"  # the spec would shrink it
    assert by_label["pool spare"]["mode"] == "live"
    # Taking the drift into the spec (the bigger volume) and applying with --yes converges.
    spec = yaml.safe_load(exported.read_text())
    data = next(p for p in spec["pools"] if p["name"] == "data")
    next(v for v in data["volumes"] if v["name"] == "disk-3.raw")["capacity"] = "128M"
    adopted = exported.parent / "adopted.yaml"
    adopted.write_text(yaml.safe_dump(spec, sort_keys=False))
    refused = run_cli("apply", "-f", str(adopted), uri=source.uri)
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    done = run_cli("apply", "-f", str(adopted), "--yes", uri=source.uri)
    assert done.returncode == 0, done.stderr
    assert _plan_json(source.uri, adopted)["actions"] == []
    exported.write_text(run_cli("export", uri=source.uri).stdout)


def test_vm_disks_and_nics_change_in_place_and_a_nic_without_mac_matches(source, exported, tmp_path):
    spec = yaml.safe_load(exported.read_text())
    vm1 = next(v for v in spec["vms"] if v["name"] == "vm1")
    vm1["disks"] = [d for d in vm1["disks"] if d["target"] != "vdb"]  # detach
    vm1["disks"].append({"volume": "data/disk-2.raw", "target": "vdc", "serial": "extra"})  # attach
    next(n for n in vm1["nics"] if n["network"] == "isolated")["model"] = "virtio"  # re-plug: another model
    vm1["nics"].append({"network": "routed"})  # the host picks the MAC
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    action = next(a for a in _plan_json(source.uri, path)["actions"] if a["name"] == "vm1")
    assert action["mode"] == "live"  # vm1 is not running: only its definition changes
    assert {c["field"] for c in action["changes"]} == {"disks[vdb]", "disks[vdc]", "nics[52:54:00:00:0c:01]", "nics[new]"}
    done = run_cli("apply", "-f", str(path), uri=source.uri)
    assert done.returncode == 0, done.stderr
    assert _plan_json(source.uri, path)["actions"] == []  # the new NIC's MAC matched
    conn = libvirt.open(source.uri)
    try:
        root = X.parse(conn.lookupByName("vm1").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()
    assert sorted(t.get("dev") for t in root.iterfind("devices/disk/target")) == ["sda", "vda", "vdc"]
    assert [m.get("type") for m in root.iterfind("devices/interface/model")] == ["virtio", "virtio", "virtio"]
    exported.write_text(run_cli("export", uri=source.uri).stdout)


BAD_SPECS = [
    ("networks:\n  - name: natnet\n    subnet: 10.50.0.0/24\n    dhcp: {start: 1}\n", "host.yaml:4: networks[0].dhcp:"),
    ("pools:\n  - name: data\n    target: /var/lib/libvirt/data\n    volumes:\n      - name: new.raw\n"
     "        capacity: 10 gigs\n", "host.yaml:6: pools[0].volumes[0].capacity:"),
    ("networks:\n  - name: extra\n    subnet: 10.50.0.0/25\n", "host.yaml:3: networks[0].subnet: 10.50.0.0/25 overlaps"),
    ("vms:\n  - name: vm9\n    memory: 64M\n    nics:\n      - network: nowhere\n",
     "host.yaml:5: vms[0].nics[0].network: 'nowhere' is no network in the spec or on the host"),
    ("pools:\n  - name: images\n    target: /var/lib/libvirt/images\n    colour: blue\n",
     "host.yaml:4: pools[0].colour: is not a field here"),
]


@pytest.mark.parametrize("text, expected", BAD_SPECS)
def test_a_bad_spec_is_refused_at_file_line_field_with_the_host_unchanged(source, tmp_path, text, expected):
    path = tmp_path / "host.yaml"
    path.write_text(text)
    before = _state(source)
    for command in ("plan", "apply"):
        out = run_cli(command, "-f", str(path), uri=source.uri)
        assert out.returncode == 1, out.stdout
        assert out.stderr.startswith(f"error: {tmp_path}/{expected}"), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert _state(source) == before


def test_impossible_changes_are_refused_before_anything_changes(source, exported, tmp_path):
    spec = yaml.safe_load(exported.read_text())
    spec["networks"].append({"name": "brandnew", "subnet": "10.77.0.0/24"})  # would be created...
    images = next(p for p in spec["pools"] if p["name"] == "images")
    next(v for v in images["volumes"] if v["name"] == "base.qcow2")["format"] = "raw"  # ...but this cannot be
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    before = _state(source)
    out = run_cli("apply", "-f", str(path), "--yes", uri=source.uri)
    assert out.returncode == 1
    assert "volume images/base.qcow2: a volume's format cannot change in place" in out.stderr
    assert _state(source) == before


def test_the_lock_refuses_a_concurrent_apply_naming_the_holder(source, exported):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import time
        from virtops.base.hostlock import host_lock
        with host_lock({source.uri!r}, "apply"):
            print('held', flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = run_cli("apply", "-f", str(exported), uri=source.uri)
        assert out.returncode == 1
        assert f"another apply (pid {holder.pid}) is changing {source.uri}" in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_network_restart_names_the_running_guests_that_lose_their_link(source, exported, guest_image, tmp_path):
    from virtops.testguest.image import kernel_cmdline
    from virtops.ops.vm import Console

    conn = libvirt.open(source.uri)
    try:
        runner = DomainSpec(name="runner", boot=KernelBoot(kernel=str(guest_image.kernel), initrd=str(guest_image.initrd),
                                                           cmdline=kernel_cmdline("shell")),
                            nics=[NicSpec(network="routed", mac="52:54:00:00:0d:01")])
        dom = conn.createXML(runner.to_xml(), 0)  # transient and running: a guest the spec does not describe
        console = Console(conn, dom, force=True)
        # Only a booted guest answers the hot-unplug that re-plugs its NIC after the restart.
        console.wait_for(lambda text: "VIRTOPS-END" in text, timeout_s=180)
        console.close()
        spec = yaml.safe_load(exported.read_text())
        routed = next(n for n in spec["networks"] if n["name"] == "routed")
        routed.update(subnet="10.61.0.0/24", gateway="10.61.0.1", dhcp="10.61.0.128-10.61.0.254", hosts=[])
        path = tmp_path / "host.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        action = next(a for a in _plan_json(source.uri, path)["actions"] if a["name"] == "routed")
        assert action["mode"] == "needs-restart"
        assert any("runner (NIC 52:54:00:00:0d:01)" in note and "a few seconds" in note for note in action["notes"])
        before = _state(source)
        out = run_cli("apply", "-f", str(path), uri=source.uri)
        assert out.returncode == 1 and "add --yes" in out.stderr and "needs --yes" in out.stdout
        assert _state(source) == before
        done = run_cli("apply", "-f", str(path), "--yes", uri=source.uri)
        assert done.returncode == 0, done.stderr
        assert _plan_json(source.uri, path)["actions"] == []
        dom.destroy()
    finally:
        conn.close()


# -- VM settings and pool permissions, in place ---------------------------------------------------------
def _edited(source, tmp_path, edit) -> str:
    """The live host's spec (as earlier tests left it), edited."""
    spec = yaml.safe_load(run_cli("export", uri=source.uri).stdout)
    edit(spec)
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _dominfo(uri: str, name: str) -> dict[str, str]:
    out = subprocess.run(["virsh", "-c", uri, "dominfo", name], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def test_memory_vcpus_boot_and_autostart_of_a_stopped_vm_change_live(source, exported, tmp_path, guest_image):
    kernel = str(guest_image.kernel)  # a file QEMU can read: plan and apply check that before a boot change

    def edit(spec):
        vm0 = next(v for v in spec["vms"] if v["name"] == "vm0")
        vm0.update(memory="128M", vcpus=2, autostart=True, boot={"kernel": kernel, "cmdline": "quiet"})
    path = _edited(source, tmp_path, edit)
    action = next(a for a in _plan_json(source.uri, path)["actions"] if a["name"] == "vm0")
    assert action["mode"] == "live" and not action["needs_yes"]
    assert {c["field"] for c in action["changes"]} == {"memory", "vcpus", "boot", "autostart"}
    assert {"field": "memory", "from": 256 * MiB, "to": 128 * MiB} in action["changes"]
    done = run_cli("apply", "-f", str(path), uri=source.uri)
    assert done.returncode == 0, done.stderr
    conn = libvirt.open(source.uri)
    try:
        dom = conn.lookupByName("vm0")
        root = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        autostart = dom.autostart()
    finally:
        conn.close()
    assert root.findtext("memory") == root.findtext("currentMemory") == str(128 * 1024) and root.findtext("vcpu") == "2"
    assert root.findtext("os/kernel") == kernel and root.findtext("os/cmdline") == "quiet"
    assert autostart == 1
    info = _dominfo(source.uri, "vm0")
    assert info["Max memory"] == f"{128 * 1024} KiB" and info["CPU(s)"] == "2" and info["Autostart"] == "enable"
    assert _plan_json(source.uri, path)["actions"] == []
    exported.write_text(run_cli("export", uri=source.uri).stdout)
    assert "autostart: true" in exported.read_text()


def test_a_running_vm_gets_its_new_memory_and_vcpus_at_its_next_boot_stated_in_the_plan(source, exported, tmp_path):
    conn = libvirt.open(source.uri)
    try:
        # No disk, BIOS boot: QEMU runs (SeaBIOS finds nothing to boot): a running, persistent VM.
        dom = conn.defineXML(DomainSpec(name="spinner", memory_mib=64, boot_devices=["hd"]).to_xml())
        dom.create()
        spec_text = run_cli("export", uri=source.uri).stdout
        spec = yaml.safe_load(spec_text)
        next(v for v in spec["vms"] if v["name"] == "spinner").update(memory="96M", vcpus=2)
        path = tmp_path / "host.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        action = next(a for a in _plan_json(source.uri, path)["actions"] if a["name"] == "spinner")
        assert action["mode"] == "needs-restart" and not action["needs_yes"]
        assert "memory, vcpus: takes effect at VM spinner's next boot; virtops does not reboot it." in action["notes"]
        done = run_cli("apply", "-f", str(path), uri=source.uri)  # nothing running is touched: no --yes needed
        assert done.returncode == 0, done.stderr
        config = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        live = X.parse(dom.XMLDesc(0))
        assert config.findtext("memory") == str(96 * 1024) and config.findtext("vcpu") == "2"
        assert live.findtext("memory") == str(64 * 1024) and live.findtext("vcpu") == "1" and dom.isActive()
        assert _plan_json(source.uri, path)["actions"] == []
    finally:
        dom = conn.lookupByName("spinner")
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        conn.close()


def test_vm_memory_beyond_the_host_is_refused_at_its_line_with_the_host_unchanged(source, exported, tmp_path):
    path = _edited(source, tmp_path,
                   lambda spec: next(v for v in spec["vms"] if v["name"] == "vm1").update(memory="100T", vcpus=64))
    before = _state(source)
    for command in ("plan", "apply"):
        out = run_cli(command, "-f", str(path), uri=source.uri)
        assert out.returncode == 1, out.stdout
        assert re.search(r"host\.yaml:\d+: vms\[1\]\.(memory: 100T is more than the host's|vcpus: 64 is not between)",
                         out.stderr), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert _state(source) == before


def test_a_dir_pools_permissions_change_in_place_on_its_directory(source, exported, tmp_path):
    import stat as stat_

    directory = source.state_dir / "lib" / "data"  # the lab's /var/lib/libvirt/data
    assert stat_.S_IMODE(os.stat(directory).st_mode) == 0o711

    def edit(spec):
        next(p for p in spec["pools"] if p["name"] == "data").update(mode="0750", owner=107, group=108)
    path = _edited(source, tmp_path, edit)
    action = next(a for a in _plan_json(source.uri, path)["actions"] if a["name"] == "data")
    assert action["mode"] == "live" and {c["field"] for c in action["changes"]} == {"mode", "owner", "group"}
    assert any("stops for a moment and starts again" in note for note in action["notes"])
    done = run_cli("apply", "-f", str(path), uri=source.uri)
    assert done.returncode == 0, done.stderr
    st = os.stat(directory)
    assert (stat_.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 107, 108)
    assert _plan_json(source.uri, path)["actions"] == []
    conn = libvirt.open(source.uri)
    try:
        pool = conn.storagePoolLookupByName("data")
        assert pool.isActive() and len(pool.listAllVolumes()) == 6
    finally:
        conn.close()
    exported.write_text(run_cli("export", uri=source.uri).stdout)


MULTI_ADDRESS = """\
networks:
  - name: multi
    mode: route
    addresses:
      - address: 10.93.4.1/24
        dhcp: [10.93.4.10-10.93.4.20, 10.93.4.30-10.93.4.40]
        hosts: [{mac: '52:54:00:93:04:02', name: one, ip: 10.93.4.2}]
      - address: 10.93.5.1/24
      - address: 'fd93:4::1/64'
        dhcp: ['fd93:4::10-fd93:4::20']
        hosts: [{id: '0:3:0:1:0:16:3e:11:22:33', name: duid-host, ip: 'fd93:4::2'}, {name: name-only, ip: 'fd93:4::3'}]
      - address: 'fd93:5::1/64'
"""


@pytest.fixture(scope="module")
def spare():
    """A fresh lab host of its own for the networks beyond the single-address fields."""
    lab = fresh_lab(f"spec-ma-{os.getpid() % 10000}")
    yield lab
    lab.down()


def test_a_multi_address_network_is_applied_exported_and_changed_by_its_addresses(spare, tmp_path):
    lab = spare
    path = tmp_path / "multi.yaml"
    path.write_text(MULTI_ADDRESS)
    out = run_cli("apply", "-f", str(path), "--yes", uri=lab.uri)
    assert out.returncode == 0, out.stderr
    info = json.loads(run_cli("net", "info", "multi", "--json", uri=lab.uri).stdout)
    assert [(a["address"], a["dhcp_ranges"]) for a in info["addresses"]] == [
        ("10.93.4.1/24", ["10.93.4.10-10.93.4.20", "10.93.4.30-10.93.4.40"]), ("10.93.5.1/24", []),
        ("fd93:4::1/64", ["fd93:4::10-fd93:4::20"]), ("fd93:5::1/64", [])]
    assert info["addresses"][2]["hosts"] == [{"id": "0:3:0:1:0:16:3e:11:22:33", "name": "duid-host", "ip": "fd93:4::2"},
                                             {"name": "name-only", "ip": "fd93:4::3"}]
    assert _plan_json(lab.uri, path)["actions"] == []
    exported = yaml.safe_load(run_cli("export", uri=lab.uri).stdout)
    multi = next(n for n in exported["networks"] if n["name"] == "multi")
    assert multi["addresses"] == yaml.safe_load(MULTI_ADDRESS)["networks"][0]["addresses"] and "xml" not in multi

    changed = yaml.safe_load(MULTI_ADDRESS)
    addresses = changed["networks"][0]["addresses"]
    addresses[2]["dhcp"].append("fd93:4::30-fd93:4::40")
    del addresses[1]
    path.write_text(yaml.safe_dump(changed))
    plan = _plan_json(lab.uri, path)["actions"]
    assert [(a["kind"], a["name"], a["action"], a["changes"][0]["field"]) for a in plan] == [
        ("network", "multi", "update", "xml")]
    out = run_cli("apply", "-f", str(path), "--yes", uri=lab.uri)
    assert out.returncode == 0, out.stderr
    xml = run_cli("net", "dumpxml", "multi", uri=lab.uri).stdout
    assert "10.93.5.1" not in xml and "start='fd93:4::30' end='fd93:4::40'" in xml
    assert _plan_json(lab.uri, path)["actions"] == []


IPV6_FLAGS = """\
networks:
  - name: lan6
    mode: isolated
    ipv6_guests: true
  - name: v6nat
    ipv6: fd00:94::/64
    nat_ipv6: true
"""


def test_the_ipv6_flags_are_applied_exported_and_a_change_restarts_the_network(spare, tmp_path):
    path = tmp_path / "flags.yaml"
    path.write_text(IPV6_FLAGS)
    out = run_cli("apply", "-f", str(path), "--yes", uri=spare.uri)
    assert out.returncode == 0, out.stderr
    infos = [json.loads(run_cli("net", "info", name, "--json", uri=spare.uri).stdout) for name in ("lan6", "v6nat")]
    assert [(i["ipv6_guests"], i["nat_ipv6"], i["active"]) for i in infos] == [(True, False, True), (False, True, True)]
    assert _plan_json(spare.uri, path)["actions"] == []
    exported = {n["name"]: n for n in yaml.safe_load(run_cli("export", uri=spare.uri).stdout)["networks"]}
    assert (exported["lan6"].get("ipv6_guests"), exported["v6nat"].get("nat_ipv6")) == (True, True)
    assert "xml" not in exported["lan6"] and "xml" not in exported["v6nat"]

    changed = yaml.safe_load(IPV6_FLAGS)
    changed["networks"][1]["nat_ipv6"] = False
    path.write_text(yaml.safe_dump(changed))
    [action] = _plan_json(spare.uri, path)["actions"]
    assert (action["name"], action["mode"], action["needs_yes"]) == ("v6nat", "needs-restart", True)
    assert action["changes"] == [{"field": "nat_ipv6", "from": True, "to": None}]
    before = _state(spare)
    refused = run_cli("apply", "-f", str(path), uri=spare.uri)
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert _state(spare) == before
    out = run_cli("apply", "-f", str(path), "--yes", uri=spare.uri)
    assert out.returncode == 0, out.stderr
    assert "<nat" not in run_cli("net", "dumpxml", "v6nat", uri=spare.uri).stdout
    assert _plan_json(spare.uri, path)["actions"] == []

    changed["networks"][1].update(mode="route", nat_ipv6=True)
    path.write_text(yaml.safe_dump(changed))
    before = _state(spare)
    planned = run_cli("plan", "-f", str(path), uri=spare.uri)
    assert planned.returncode == 1 and "networks[1].nat_ipv6: mode route does no NAT" in planned.stderr, planned.stderr
    assert _state(spare) == before


SIX = """\
networks:
  - name: six
    subnet: 10.96.0.0/24
    ipv6: fd00:96::/64
"""


def test_a_networks_ipv6_subnet_moves_and_goes_by_an_announced_restart(spare, tmp_path):
    path = tmp_path / "six.yaml"
    path.write_text(SIX)
    out = run_cli("apply", "-f", str(path), "--yes", uri=spare.uri)
    assert out.returncode == 0, out.stderr
    for ipv6, seen, gone in (("fd00:97::/64", "fd00:97::1", "fd00:96::"), (None, "10.96.0.1", "fd00:97::")):
        changed = yaml.safe_load(SIX)
        changed["networks"][0]["ipv6"] = ipv6
        if ipv6 is None:
            del changed["networks"][0]["ipv6"]
        path.write_text(yaml.safe_dump(changed))
        [action] = _plan_json(spare.uri, path)["actions"]
        assert (action["name"], action["mode"], action["needs_yes"]) == ("six", "needs-restart", True), action
        assert [c["field"] for c in action["changes"]] == ["ipv6"]
        out = run_cli("apply", "-f", str(path), "--yes", uri=spare.uri)
        assert out.returncode == 0, out.stderr
        xml = run_cli("net", "dumpxml", "six", uri=spare.uri).stdout
        assert seen in xml and gone not in xml, xml
        assert _plan_json(spare.uri, path)["actions"] == []
