"""Domain XML (<domain>): identity, memory, vCPUs, how it boots, and its disks and NICs."""
from __future__ import annotations

from .devices import DiskXml, GraphicsXml, NicXml, VideoXml
from .fields import INT, Children, Field, SizeField, XmlModel


class BootDeviceXml(XmlModel):
    """<boot dev='hd'/> in <os>: one entry of the BIOS boot order."""

    TAG = "boot"
    dev = Field("@dev")


class DomainXml(XmlModel):
    TAG = "domain"
    # libvirt's own order (virDomainDefFormat), so elements virtops adds land where virsh would put them.
    ORDER = {
        "": ("name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
             "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "iothreadids", "cputune",
             "numatune", "resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "features", "cpu",
             "clock", "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices", "seclabel",
             "keywrap", "launchSecurity"),
        "os": ("type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb", "acpi", "boot",
               "bootmenu", "smbios", "bios"),
        "devices": ("emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial",
                    "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio", "video",
                    "hostdev", "redirdev", "redirfilter", "hub", "watchdog", "memballoon", "rng", "panic", "shmem",
                    "memory", "iommu", "vsock", "crypto"),
    }
    type = Field("@type")                      # kvm or qemu (TCG)
    name = Field("name", carry="VmEntry.name")
    uuid = Field("uuid")
    memory = SizeField("memory", default_unit="KiB", write_unit="KiB", carry="VmEntry.memory")
    current_memory = SizeField("currentMemory", default_unit="KiB", write_unit="KiB")
    vcpu = Field("vcpu", INT, carry="VmEntry.vcpus")
    vcpu_current = Field("vcpu/@current", INT)  # fewer vCPUs online than the maximum
    os_type = Field("os/type")                 # hvm
    arch = Field("os/type/@arch")
    kernel = Field("os/kernel", carry="BootEntry.kernel")
    initrd = Field("os/initrd", carry="BootEntry.initrd")
    cmdline = Field("os/cmdline", carry="BootEntry.cmdline")
    boot_devices = Children(BootDeviceXml, "os/boot")
    disks = Children(DiskXml, "devices/disk", key="target", carry="VmEntry.disks")
    nics = Children(NicXml, "devices/interface", carry="VmEntry.nics")
    graphics = Children(GraphicsXml, "devices/graphics")
    videos = Children(VideoXml, "devices/video")
