"""`plan` finds every mistake `apply` would meet, against the live host and the rest of the spec,
and reports them all (`file:line: field: sentence`); `apply` of such a spec changes nothing."""
from __future__ import annotations

import textwrap

import libvirt
import pytest

from tests.helpers import delete_objects, dir_pool_element, host_state, run_cli, volume_element
from virtops.ops.domain import DiskSpec, DomainSpec, KernelBoot, NicSpec
from virtops.xmlmodels import doc as X

MiB = 1024**2
HOLDER_MAC = "52:54:00:77:00:01"


@pytest.fixture(scope="module")
def rich(lab):
    """A pool with a volume that VM `holder` uses read-write, holder's NIC MAC on `default`-less
    host's own network `heldnet`."""
    conn = libvirt.open(lab.uri)
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element("refpool")), 0)
    pool.build(0)
    pool.create(0)
    pool.createXML(X.to_string(volume_element("used.raw", 64 * MiB, "raw")), 0)
    pool.createXML(X.to_string(volume_element("free.raw", 64 * MiB, "raw")), 0)
    net = conn.networkDefineXML(textwrap.dedent("""\
        <network><name>heldnet</name><ip address='10.77.0.1' prefix='24'/></network>"""))
    net.create()
    conn.defineXML(DomainSpec(name="holder", boot=KernelBoot(kernel="/boot/vmlinuz"),
                              disks=[DiskSpec(target="vda", pool="refpool", volume="used.raw")],
                              nics=[NicSpec(network="heldnet", mac=HOLDER_MAC)]).to_xml())
    try:
        yield lab
    finally:
        delete_objects([conn.lookupByName("holder")], [net], [pool])
        conn.close()


def _vm(name: str, disks: str = "", nics: str = "", memory: str = "64M") -> str:
    text = f"  - name: {name}\n    memory: {memory}\n"
    if disks:
        text += "    disks:\n" + textwrap.indent(textwrap.dedent(disks), "      ")
    if nics:
        text += "    nics:\n" + textwrap.indent(textwrap.dedent(nics), "      ")
    return text


POOLS = """\
pools:
  - name: refpool
    target: /var/lib/libvirt/refpool
    volumes:
      - {name: used.raw, capacity: 64M}
      - {name: free.raw, capacity: 64M}
"""

def _multi(addresses: str) -> str:
    """A spec of one multi-address network n1 with these addresses (YAML list items)."""
    return "networks:\n  - name: n1\n    mode: isolated\n    addresses:\n" + textwrap.indent(addresses, "      ")


# (what is wrong, the spec, what plan must say: field path and a word of the sentence)
MISTAKES = [
    ("scsi bus with a virtio target", POOLS + "vms:\n" + _vm("m1", "- {volume: refpool/free.raw, bus: scsi, target: vdb}\n"),
     "vms[0].disks[0].target: 'vdb' is not a scsi disk name"),
    ("a MAC another VM uses", POOLS + "vms:\n" + _vm("m1", nics=f"- {{network: heldnet, mac: '{HOLDER_MAC}'}}\n"),
     f"vms[0].nics[0].mac: {HOLDER_MAC} is already used by holder"),
    ("a volume another VM uses read-write", POOLS + "vms:\n" + _vm("m1", "- {volume: refpool/used.raw}\n"),
     "vms[0].disks[0].volume: refpool/used.raw is attached to holder"),
    ("two VMs of the spec on one volume", POOLS + "vms:\n" + _vm("m1", "- {volume: refpool/free.raw}\n")
     + _vm("m2", "- {volume: refpool/free.raw}\n"),
     "vms[1].disks[0].volume: refpool/free.raw is attached to m1"),
    ("a volume bigger than its pool", POOLS.replace("free.raw, capacity: 64M}", "free.raw, capacity: 64M}\n"
                                                    "      - {name: huge.raw, capacity: 900T, allocation: 900T}"),
     "pools[0].volumes[2].allocation: 900.00 TiB is more than pool refpool has free"),
    ("one target on two disks", POOLS + "vms:\n" + _vm("m1", "- {volume: refpool/free.raw, target: vdb}\n"
                                                        "- {volume: refpool/used.raw, target: vdb, readonly: true}\n"),
     "vms[0].disks[1].target: 'vdb' is given twice"),
    ("a volume in a pool nobody defines", POOLS + "vms:\n" + _vm("m1", "- {volume: nopool/x.raw}\n"),
     "vms[0].disks[0].volume: nopool/x.raw is no volume in the spec or on the host"),
    ("a static DHCP host outside the subnet", "networks:\n  - name: n1\n    mode: isolated\n    subnet: 10.78.0.0/24\n"
     "    dhcp: 10.78.0.100-10.78.0.200\n    hosts:\n      - {mac: '52:54:00:77:00:09', ip: 10.79.0.5}\n",
     "networks[0].hosts[0].ip: 10.79.0.5 is outside the subnet"),
    ("a DHCP range outside its own address's subnet", _multi("- {address: 10.78.1.1/24}\n"
                                                              "- {address: 10.78.2.1/24, dhcp: [10.78.1.10-10.78.1.20]}\n"),
     "networks[0].addresses[1].dhcp: 10.78.1.10 is outside the subnet 10.78.2.0/24"),
    ("two addresses overlapping", _multi("- {address: 10.78.1.1/24}\n- {address: 10.78.1.129/25}\n"),
     "networks[0].addresses[1].address: 10.78.1.128/25 overlaps 10.78.1.0/24 of addresses[0]"),
    ("an address overlapping another network's", _multi("- {address: 'fd78::1/64'}\n- {address: 10.77.0.200/24}\n"),
     "networks[0].addresses[1].address: 10.77.0.0/24 overlaps 10.77.0.0/24 of network heldnet"),
    ("one MAC on two hosts", _multi(
        "- {address: 10.78.1.1/24, hosts: [{mac: '52:54:00:77:00:09', ip: 10.78.1.5},"
        " {mac: '52:54:00:77:00:09', ip: 10.78.1.6}]}\n"),
     "networks[0].addresses[0].hosts[1].mac: 52:54:00:77:00:09 is already given to the host 10.78.1.5"),
    ("a MAC on an IPv6 host", _multi("- {address: 'fd78::1/64', hosts: [{mac: '52:54:00:77:00:09', ip: 'fd78::5'}]}\n"),
     "networks[0].addresses[0].hosts[0].mac: libvirt knows an IPv6 host (fd78::5) by its DUID or name, not its MAC"),
    ("memory beyond the host", POOLS + "vms:\n" + _vm("m1", "- {volume: refpool/free.raw}\n", memory="64T"),
     "vms[0].memory:"),
    ("a disk in a pool the spec makes with a mode QEMU cannot pass",
     "pools:\n  - name: refclosed\n    target: /var/lib/libvirt/refclosed\n    mode: '0700'\n    volumes:\n"
     "      - {name: d.raw, capacity: 16M}\nvms:\n" + _vm("m1", "- {volume: refclosed/d.raw}\n"),
     "vms[0].disk: QEMU runs as libvirt-qemu (64055:64055) and cannot reach disk refclosed/d.raw (vda): the "
     "directory /var/lib/libvirt/refclosed of pool refclosed has mode 0700, owner 0:0"),
    ("a network the spec creates later is fine, a missing one is not", POOLS + "vms:\n"
     + _vm("m1", nics="- {network: nonet}\n"), "vms[0].nics[0].network: 'nonet' is no network"),
]


@pytest.mark.parametrize("what,text,expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_plan_finds_what_apply_refuses_and_apply_changes_nothing(rich, tmp_path, what, text, expected):
    spec = tmp_path / "host.yaml"
    spec.write_text(text)
    before = host_state(libvirt.open(rich.uri))
    plan = run_cli("plan", "-f", str(spec), uri=rich.uri)
    assert plan.returncode == 1, (what, plan.stdout, plan.stderr)
    assert expected in plan.stderr, (what, plan.stderr)
    assert f"{spec}:" in plan.stderr and "Traceback" not in plan.stderr
    applied = run_cli("apply", "-f", str(spec), "--yes", uri=rich.uri)
    assert applied.returncode == 1 and expected in applied.stderr, (what, applied.stderr)
    assert host_state(libvirt.open(rich.uri)) == before, what


def test_plan_reports_every_mistake_at_once(rich, tmp_path):
    spec = tmp_path / "host.yaml"
    spec.write_text(POOLS + "vms:\n"
                    + _vm("m1", "- {volume: refpool/free.raw, bus: scsi, target: vdb}\n",
                          nics=f"- {{network: heldnet, mac: '{HOLDER_MAC}'}}\n")
                    + _vm("m2", "- {volume: refpool/used.raw}\n", memory="64T"))
    plan = run_cli("plan", "-f", str(spec), uri=rich.uri)
    assert plan.returncode == 1
    lines = [line for line in plan.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) >= 3, plan.stderr
    for part in ("vms[0].disks[0].target", "vms[0].nics[0].mac", "vms[1]"):
        assert any(part in line for line in lines), (part, plan.stderr)
    assert all(f"{spec}:" in line for line in lines)


def test_a_spec_vm_may_use_what_the_spec_creates_before_it(rich, tmp_path):
    """Objects the spec creates earlier count: a new pool, its volume and a new network."""
    spec = tmp_path / "host.yaml"
    spec.write_text(textwrap.dedent("""\
        pools:
          - name: newpool
            target: /var/lib/libvirt/newpool
            volumes:
              - {name: a.raw, capacity: 16M}
        networks:
          - {name: newnet, mode: isolated, subnet: 10.80.0.0/24}
        vms:
          - name: m1
            memory: 64M
            disks:
              - {volume: newpool/a.raw}
            nics:
              - {network: newnet}
        """))
    before = host_state(libvirt.open(rich.uri))
    plan = run_cli("plan", "-f", str(spec), uri=rich.uri)
    assert plan.returncode == 0, plan.stderr
    assert "3 to create" in plan.stdout or "to create" in plan.stdout
    assert host_state(libvirt.open(rich.uri)) == before


def test_plan_refuses_a_boot_change_to_a_kernel_qemu_cannot_read(rich, tmp_path):
    """A VM's boot changed by a spec is checked as `vm set --boot` checks it: the kernel exists."""
    import yaml

    exported = run_cli("export", uri=rich.uri)
    assert exported.returncode == 0, exported.stderr
    spec = yaml.safe_load(exported.stdout)
    index = next(i for i, vm in enumerate(spec["vms"]) if vm["name"] == "holder")
    spec["vms"][index]["boot"] = {"kernel": "/nonexistent/vmlinuz"}
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    before = host_state(libvirt.open(rich.uri))
    plan = run_cli("plan", "-f", str(path), uri=rich.uri)
    expected = f"vms[{index}].boot: kernel /nonexistent/vmlinuz is not a file on the host"
    assert plan.returncode == 1 and expected in plan.stderr, plan.stderr
    applied = run_cli("apply", "-f", str(path), "--yes", uri=rich.uri)
    assert applied.returncode == 1 and expected in applied.stderr, applied.stderr
    assert host_state(libvirt.open(rich.uri)) == before
