"""`vm list`'s reading of domain XML, and its light start-up. (That its brief and long readings
agree is tested on a real libvirtd, in tests/lab/test_vm_listing.py: libvirt's test driver gives
no vCPU, memory or disk stats.)"""
from __future__ import annotations

import subprocess
import sys

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
