"""Unit tests for the test-guest image builder, kernel command line and report parser.

No VM is booted here; building the real image needs linux-image-amd64 and
busybox-static on the host and is skipped without them.
"""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest

from virtops.testguest import image as guest
from virtops.testguest.image import GuestImageError, Nic, build_guest_image, kernel_cmdline, parse_report

# --------------------------------------------------------------------------
# parse_report
# --------------------------------------------------------------------------

BOOT_CONSOLE = (
    "SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n"
    "Booting from ROM..\x1b[0m.VIRTOPS-BEGIN\r\n"
    "VIRTOPS disk vda 1048576000\r\n"
    "VIRTOPS nic eth0 mac=52:54:00:12:34:56 ip=192.168.122.57/24 router=192.168.122.1 server=192.168.122.1\r\n"
    "[    3.032255] ACPI: \\_SB_.LNKC: Enabled at IRQ 11\r\n"
    "VIRTOPS nic eth1 mac=52:54:00:AA:BB:CC ip=none router=none server=none\r\n"
    "VIRTOPS ping 192.168.122.1 ok\r\n"
    "VIRTOPS ping 10.9.9.9 fail\r\n"
    "VIRTOPS-END\r\n"
    "[    5.580024] reboot: Power down\r\n"
)

SHELL_CONSOLE = BOOT_CONSOLE + (
    "/ # vo-report\r\n"
    "VIRTOPS-BEGIN\r\n"
    "VIRTOPS disk vda 1048576000\r\n"
    "VIRTOPS disk vdb 67108864\r\n"
    "VIRTOPS nic eth0 mac=52:54:00:12:34:56 ip=10.0.4.15/24 router=10.0.4.2 server=10.0.4.3\r\n"
    "VIRTOPS-END\r\n"
    "/ # "
)


def test_parse_report_reads_disks_nics_and_pings_among_kernel_noise():
    report = parse_report(BOOT_CONSOLE)

    assert report.complete
    assert report.disks == {"vda": 1048576000}
    assert report.nics == [
        Nic(name="eth0", mac="52:54:00:12:34:56", ip="192.168.122.57/24",
            router="192.168.122.1", lease_server="192.168.122.1"),
        Nic(name="eth1", mac="52:54:00:aa:bb:cc"),
    ]  # fmt: skip
    assert report.pings == {"192.168.122.1": True, "10.9.9.9": False}


def test_parse_report_uses_the_last_complete_block():
    report = parse_report(SHELL_CONSOLE)

    assert report.disks == {"vda": 1048576000, "vdb": 67108864}
    assert [(nic.name, nic.ip, nic.router, nic.lease_server) for nic in report.nics] == [
        ("eth0", "10.0.4.15/24", "10.0.4.2", "10.0.4.3")
    ]
    assert report.pings == {}


def test_parse_report_prefers_an_earlier_complete_block_over_a_cut_off_one():
    report = parse_report(BOOT_CONSOLE + "VIRTOPS-BEGIN\nVIRTOPS disk vda 1\n")

    assert report.complete
    assert report.disks == {"vda": 1048576000}


def test_parse_report_marks_a_cut_off_block_incomplete():
    report = parse_report("noise\nVIRTOPS-BEGIN\nVIRTOPS disk vda 512\nVIRTOPS nic eth0 mac=52:54:00:")

    assert not report.complete
    assert report.disks == {"vda": 512}
    assert report.nics == []  # the last line never got its newline and stays incomplete too


def test_parse_report_accepts_a_block_printed_after_a_shell_prompt():
    # ash queries the cursor position (ESC [6n) right after printing its prompt.
    report = parse_report("/ # \x1b[6nVIRTOPS-BEGIN\r\nVIRTOPS disk sr0 0\r\nVIRTOPS-END\r\n")

    assert report.disks == {"sr0": 0}


def test_parse_report_ignores_report_kinds_it_does_not_know():
    report = parse_report("VIRTOPS-BEGIN\nVIRTOPS uptime 12\nVIRTOPS disk vda 512\nVIRTOPS-END\n")

    assert report.disks == {"vda": 512}


@pytest.mark.parametrize("console", ["", "Linux version 6.1.0\r\n/ # ", "VIRTOPS disk vda 1\nVIRTOPS-END\n"])
def test_parse_report_without_a_block_raises(console):
    with pytest.raises(ValueError, match="no VIRTOPS-BEGIN"):
        parse_report(console)


@pytest.mark.parametrize(
    "line",
    [
        "VIRTOPS disk vda lots",
        "VIRTOPS ping 10.0.0.1 maybe",
        "VIRTOPS nic eth0 ip=10.0.0.2/24",
        "VIRTOPS nic eth0 mac=52:54:00:12:34:56 ip=10.0.0.300/24",
    ],
)
def test_parse_report_rejects_malformed_lines(line):
    with pytest.raises(ValueError, match="malformed"):
        parse_report(f"VIRTOPS-BEGIN\n{line}\nVIRTOPS-END\n")


# --------------------------------------------------------------------------
# kernel_cmdline
# --------------------------------------------------------------------------


def test_kernel_cmdline_defaults_to_report_mode():
    assert kernel_cmdline(screen=True) == "console=tty0 console=ttyS0 panic=-1 virtops.screen=1 virtops.mode=report"
    assert kernel_cmdline() == "console=ttyS0 panic=-1 quiet virtops.mode=report"


def test_kernel_cmdline_lists_ping_targets():
    assert kernel_cmdline("shell", ["10.0.0.1", "10.0.0.2", "fd00::1"]) == (
        "console=ttyS0 panic=-1 quiet virtops.mode=shell virtops.ping=10.0.0.1,10.0.0.2,fd00::1"
    )


@pytest.mark.parametrize(
    ("mode", "ping", "message"),
    [
        ("debug", (), "not one of"),
        ("report", ["10.0.0.1", "10.0.0.256"], "not an IP address"),
        ("report", ["10.0.0.1 init=/bin/sh"], "not an IP address"),
        ("report", "10.0.0.1", "not a single string"),
    ],
)
def test_kernel_cmdline_rejects_bad_arguments(mode, ping, message):
    with pytest.raises(ValueError, match=message):
        kernel_cmdline(mode, ping)


# --------------------------------------------------------------------------
# Image building helpers
# --------------------------------------------------------------------------


def read_newc(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """Parse a newc cpio into {path: (mode, data)}, checking the layout as it goes."""
    entries = {}
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * index : 14 + 8 * index], 16) for index in range(13)]
        _ino, mode, uid, gid, _nlink, mtime, filesize, *_devs, namesize, _check = fields
        assert (uid, gid, mtime) == (0, 0, 0)
        name_start = offset + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = _align4(name_start + namesize)
        offset = _align4(data_start + filesize)
        if name == "TRAILER!!!":
            assert offset == len(archive)
            return entries
        entries[name] = (mode, archive[data_start : data_start + filesize])


def _align4(offset: int) -> int:
    return offset + (-offset % 4)


def initrd_entries(image: guest.GuestImage) -> dict[str, tuple[int, bytes]]:
    return read_newc(gzip.decompress(image.initrd.read_bytes()))


def module_load_order(entries: dict[str, tuple[int, bytes]]) -> list[str]:
    return entries["etc/virtops/modules"][1].decode().split()


def packaged_init_script() -> bytes:
    return (Path(guest.__file__).parent / "guest-init.sh").read_bytes()


# --------------------------------------------------------------------------
# build_guest_image on this host's kernel and busybox
# --------------------------------------------------------------------------


def _host_has_guest_inputs() -> bool:
    try:
        guest._newest_kernel_version()
        guest._read_busybox()
    except GuestImageError:
        return False
    return True


needs_host_inputs = pytest.mark.skipif(
    not _host_has_guest_inputs(), reason="needs Debian packages linux-image-amd64 and busybox-static"
)


@pytest.fixture(scope="module")
def host_image(tmp_path_factory) -> guest.GuestImage:
    return build_guest_image(tmp_path_factory.mktemp("cache"))


@needs_host_inputs
def test_build_guest_image_is_reproducible_and_cached(host_image, tmp_path):
    rebuilt = build_guest_image(tmp_path)
    assert rebuilt.digest == host_image.digest
    assert rebuilt.initrd.read_bytes() == host_image.initrd.read_bytes()

    before = host_image.initrd.stat().st_mtime_ns, host_image.kernel.stat().st_mtime_ns
    cached = build_guest_image(host_image.initrd.parent.parent)
    assert cached == host_image
    assert (cached.initrd.stat().st_mtime_ns, cached.kernel.stat().st_mtime_ns) == before


@needs_host_inputs
def test_build_guest_image_lays_out_the_cache_by_digest(host_image):
    assert host_image.initrd.parent.name == host_image.digest
    assert host_image.kernel.read_bytes() == Path(f"/boot/vmlinuz-{host_image.kernel_version}").read_bytes()
    assert sorted(path.name for path in host_image.initrd.parent.parent.iterdir()) == [host_image.digest]


@needs_host_inputs
def test_initrd_holds_init_busybox_and_the_virtio_modules(host_image):
    entries = initrd_entries(host_image)

    assert entries["init"] == (0o100755, packaged_init_script())
    assert entries["bin/busybox"][1] == Path("/bin/busybox").read_bytes()
    assert entries["bin/sh"] == (0o120777, b"busybox")
    loaded = {Path(path).name.split(".ko")[0] for path in module_load_order(entries)}
    config = guest._kernel_config(host_image.kernel_version)
    for driver, symbol in guest._REQUIRED_DRIVERS:
        assert driver in loaded or config.get(symbol) == "y"


@needs_host_inputs
def test_initrd_modules_are_loaded_after_their_dependencies(host_image):
    entries = initrd_entries(host_image)
    order = module_load_order(entries)
    dep_table = guest._read_modules_dep(Path("/lib/modules") / host_image.kernel_version)

    for position, path in enumerate(order):
        assert path.lstrip("/") in entries
        _, dependencies = dep_table[guest._module_name(path)]
        loaded_before = {guest._module_name(earlier) for earlier in order[:position]}
        assert {guest._module_name(dependency) for dependency in dependencies} <= loaded_before


# --------------------------------------------------------------------------
# build_guest_image on a fake host: compressed modules, built-in drivers, errors
# --------------------------------------------------------------------------

FAKE_VERSION = "6.1.0-10-amd64"
FAKE_MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko \
kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/scsi/unrelated.ko:
"""
FAKE_CONFIG = "CONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_NET=m\n# CONFIG_VIRTIO_MMIO is not set\n"


def fake_module_bytes(path: str) -> bytes:
    return b"\x7fELF fake module " + path.encode()


def write_fake_kernel(root: Path, version: str, with_vmlinuz: bool = True) -> Path:
    modules_dir = root / "lib/modules" / version
    modules_dir.mkdir(parents=True)
    (modules_dir / "modules.dep").write_text(FAKE_MODULES_DEP)
    (modules_dir / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    for line in FAKE_MODULES_DEP.splitlines():
        path = line.split(":")[0]
        data = fake_module_bytes(path.removesuffix(".xz"))
        (modules_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (modules_dir / path).write_bytes(lzma.compress(data) if path.endswith(".xz") else data)
    boot = root / "boot"
    boot.mkdir(exist_ok=True)
    (boot / f"config-{version}").write_text(FAKE_CONFIG)
    if with_vmlinuz:
        (boot / f"vmlinuz-{version}").write_bytes(b"kernel " + version.encode())
    return modules_dir


def elf_header(interpreter: bool = False) -> bytes:
    """A 64-bit little-endian ELF header with one program header, PT_INTERP if asked."""
    header = bytearray(64 + 56)
    header[:6] = b"\x7fELF\x02\x01"
    header[0x20:0x28] = (64).to_bytes(8, "little")  # e_phoff
    header[0x36:0x38] = (56).to_bytes(2, "little")  # e_phentsize
    header[0x38:0x3A] = (1).to_bytes(2, "little")  # e_phnum
    header[64:68] = (3 if interpreter else 1).to_bytes(4, "little")  # PT_INTERP or PT_LOAD
    return bytes(header)


@pytest.fixture
def fake_host(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "host"
    write_fake_kernel(root, "6.1.0-9-amd64")
    write_fake_kernel(root, FAKE_VERSION)
    write_fake_kernel(root, "6.1.0-11-amd64", with_vmlinuz=False)  # modules left after removal
    busybox = root / "bin/busybox"
    busybox.parent.mkdir()
    busybox.write_bytes(elf_header())
    monkeypatch.setattr(guest, "_MODULES_ROOT", root / "lib/modules")
    monkeypatch.setattr(guest, "_BOOT_DIR", root / "boot")
    monkeypatch.setattr(guest, "_BUSYBOX", busybox)
    return root


def test_fake_host_picks_newest_kernel_that_has_a_vmlinuz(fake_host, tmp_path):
    image = build_guest_image(tmp_path / "cache")

    assert image.kernel_version == FAKE_VERSION
    assert image.kernel.read_bytes() == b"kernel " + FAKE_VERSION.encode()


def test_fake_host_modules_are_decompressed_and_ordered_by_dependency(fake_host, tmp_path):
    entries = initrd_entries(build_guest_image(tmp_path / "cache"))

    prefix = f"/lib/modules/{FAKE_VERSION}/kernel/"
    assert module_load_order(entries) == [
        prefix + "drivers/virtio/virtio_ring.ko",
        prefix + "drivers/virtio/virtio.ko",
        prefix + "drivers/block/virtio_blk.ko",
        prefix + "net/core/failover.ko",
        prefix + "drivers/net/net_failover.ko",
        prefix + "drivers/net/virtio_net.ko",
    ]  # virtio_pci is built in; unrelated.ko is not needed
    for path in module_load_order(entries):
        relative = path.removeprefix(f"/lib/modules/{FAKE_VERSION}/")
        assert entries[path.lstrip("/")] == (0o100644, fake_module_bytes(relative))


def test_fake_host_digest_follows_the_inputs(fake_host, tmp_path):
    first = build_guest_image(tmp_path / "cache")
    module = fake_host / "lib/modules" / FAKE_VERSION / "kernel/net/core/failover.ko"
    module.write_bytes(b"\x7fELF patched")

    second = build_guest_image(tmp_path / "cache")

    assert second.digest != first.digest
    assert first.initrd.is_file() and second.initrd.is_file()


def test_fake_host_repairs_a_cache_entry_missing_a_file(fake_host, tmp_path):
    image = build_guest_image(tmp_path / "cache")
    image.initrd.unlink()

    assert build_guest_image(tmp_path / "cache") == image
    assert image.initrd.is_file()
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [image.digest]  # no staging left


def test_missing_busybox_names_the_package(fake_host, tmp_path, monkeypatch):
    monkeypatch.setattr(guest, "_BUSYBOX", tmp_path / "nowhere/busybox")

    with pytest.raises(GuestImageError, match="busybox-static"):
        build_guest_image(tmp_path / "cache")


def test_dynamic_busybox_is_refused(fake_host, tmp_path):
    (fake_host / "bin/busybox").write_bytes(elf_header(interpreter=True))

    with pytest.raises(GuestImageError, match="not statically linked"):
        build_guest_image(tmp_path / "cache")


def test_missing_kernel_names_the_package(fake_host, tmp_path, monkeypatch):
    monkeypatch.setattr(guest, "_BOOT_DIR", tmp_path / "empty-boot")

    with pytest.raises(GuestImageError, match="linux-image-amd64"):
        build_guest_image(tmp_path / "cache")


def test_kernel_without_a_required_driver_is_refused(fake_host, tmp_path):
    modules_dir = fake_host / "lib/modules" / FAKE_VERSION
    dep_lines = (modules_dir / "modules.dep").read_text().splitlines()
    (modules_dir / "modules.dep").write_text("\n".join(line for line in dep_lines if "virtio_blk" not in line))

    with pytest.raises(GuestImageError, match="virtio_blk"):
        build_guest_image(tmp_path / "cache")
