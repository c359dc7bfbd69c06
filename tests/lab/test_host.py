"""Host facts and the KVM-or-TCG decision, on a real libvirtd with the real test guest."""
from __future__ import annotations

import ipaddress
import json

from tests.helpers import run_cli
from virtops.ops.domain import DomainSpec, KernelBoot, NicSpec, run_transient_capturing_console
from virtops.testguest.image import kernel_cmdline, parse_report


def test_the_test_guest_boots_and_reports_its_lease(host, guest_image):
    spec = DomainSpec(name="report-guest", virt_type="qemu",
                      boot=KernelBoot(kernel=str(guest_image.kernel), initrd=str(guest_image.initrd),
                                      cmdline=kernel_cmdline("report")),
                      nics=[NicSpec(network="default", mac="52:54:00:aa:00:01")])
    text, seconds, finished = run_transient_capturing_console(host.conn, spec, lambda t: "VIRTOPS-END" in t, 120)
    assert finished, text[-2000:]
    report = parse_report(text)
    assert report.complete
    [nic] = report.nics
    assert nic.mac == "52:54:00:aa:00:01"
    assert ipaddress.ip_interface(nic.ip).ip in ipaddress.ip_network("192.168.122.0/24")
    assert nic.router == "192.168.122.1"
    assert report.pings == {"192.168.122.1": True}
    assert host.conn.listAllDomains() == []  # transient and powered off: nothing left


def test_host_check_decides_between_kvm_and_tcg(lab):
    result = run_cli("host", "check", "--json", uri=f"lab:{lab.name}")
    assert result.returncode == 0, result.stderr
    check = json.loads(result.stdout)
    assert check["tcg"]["usable"] and 0 < check["tcg"]["boot_seconds"] < 60
    assert check["chosen"] == ("kvm" if check["kvm"]["usable"] else "qemu")
    if not check["kvm"]["usable"]:
        assert check["kvm"]["reason"]
    info = json.loads(run_cli("host", "info", "--json", uri=f"lab:{lab.name}").stdout)
    assert info["virt_type"] == check["chosen"]
    assert info["virt_type_source"].startswith("host check at ")
