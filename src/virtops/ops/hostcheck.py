"""`host check`: whether a host runs guests with KVM or only with TCG, found by booting the test
guest with each, and remembered per machine (daemon/facts.py reads what was remembered)."""
from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import libvirt

from virtops.daemon.facts import cache_file, offers_kvm
from virtops.daemon.facts_models import BootResult, HostCheck, cached_check
from virtops.ops.domain import DomainSpec, KernelBoot, run_transient_capturing_console
from virtops.testguest.image import build_guest_image, kernel_cmdline, parse_report

if TYPE_CHECKING:
    from virtops.host import Host

KVM_TIMEOUT_S = 20  # a working KVM boots the test guest in 1-3 s
TCG_TIMEOUT_S = 120


def check(host: Host, kvm_timeout_s: float = KVM_TIMEOUT_S, tcg_timeout_s: float = TCG_TIMEOUT_S) -> HostCheck:
    """Boot the test guest with KVM, then with TCG, and remember which works."""
    kvm = _try_boot(host, "kvm", kvm_timeout_s)
    tcg = _try_boot(host, "qemu", tcg_timeout_s)
    chosen = "kvm" if kvm.usable else "qemu"
    result = HostCheck(host=host.uri, kvm=kvm, tcg=tcg, chosen=chosen, checked_at=time.time())
    path = cache_file(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2))
    return result


def virt_type(host: Host) -> str:
    """The domain type to use for new guests: 'kvm' when KVM really boots a guest here, else 'qemu' (TCG)."""
    cached = cached_check(host)
    if cached:
        return cached.chosen
    if not offers_kvm(host):
        return "qemu"
    return check(host).chosen


def _try_boot(host: Host, virt_type: str, timeout_s: float) -> BootResult:
    if virt_type == "kvm" and not offers_kvm(host):
        return BootResult(virt_type=virt_type, usable=False, reason="libvirt offers no KVM on this host")
    image = build_guest_image()
    spec = DomainSpec(name=f"virtops-check-{virt_type}-{uuid.uuid4().hex[:8]}", virt_type=virt_type,
                      memory_mib=256, boot=KernelBoot(kernel=str(image.kernel), initrd=str(image.initrd),
                                                      cmdline=kernel_cmdline("report")))
    try:
        text, seconds, finished = run_transient_capturing_console(
            host.conn, spec, until=lambda t: "VIRTOPS-END" in t, timeout_s=timeout_s)
    except libvirt.libvirtError as err:
        return BootResult(virt_type=virt_type, usable=False, reason=err.get_error_message())
    if not finished:
        return BootResult(virt_type=virt_type, usable=False,
                          reason=f"the guest printed no report within {timeout_s:.0f} s")
    try:
        parse_report(text)
    except ValueError as err:
        return BootResult(virt_type=virt_type, usable=False, reason=str(err))
    return BootResult(virt_type=virt_type, usable=True, boot_seconds=round(seconds, 1))
