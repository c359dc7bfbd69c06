"""The tiny Linux test guest: a Debian kernel plus a busybox initramfs.

`build_guest_image()` packs /bin/busybox (busybox-static), the virtio-pci,
virtio-blk and virtio-net kernel modules with their dependencies and
``guest-init.sh`` (as /init) into a reproducible initramfs, cached by input
hash. `kernel_cmdline()` builds the boot arguments and `parse_report()` reads
what the guest prints on its serial console (ttyS0).

Report format
-------------
The guest describes what it sees in a block of lines; anything outside a block
(kernel messages, shell prompts, echoed commands) is ignored, as are ``\\r``::

    VIRTOPS-BEGIN
    VIRTOPS disk vda 1048576000
    VIRTOPS nic eth0 mac=52:54:00:12:34:56 ip=192.168.122.57/24 router=192.168.122.1 server=192.168.122.1
    VIRTOPS nic eth1 mac=52:54:00:ab:cd:ef ip=none router=none server=none
    VIRTOPS ping 192.168.122.1 ok
    VIRTOPS ping 10.0.0.9 fail
    VIRTOPS-END

* ``disk NAME BYTES``: every block device in /sys/block except ram* and loop*,
  size in bytes (sectors * 512).
* ``nic NAME mac=MAC ip=ADDR/PREFIX router=IP server=IP``: every Ethernet
  interface; ``ip``/``router``/``server`` come from its current DHCP lease
  (``server`` is the DHCP server id) and are ``none`` without a lease.
* ``ping TARGET ok|fail``: the router of every lease, then each address given
  with ``virtops.ping=``; ``ok`` when one of two echo requests was answered.

In ``report`` mode the guest prints one block after DHCP and powers off. In
``shell`` mode it keeps running: a new block is printed whenever disks, NICs or
leases change (hotplug, re-plugged NIC), ``vo-report`` prints one on demand
and the console is an interactive shell. A console may therefore hold several
blocks; the last complete one is the current state.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import ConfigDict

from virtops.base.errors import VirtopsError
from virtops.base.model import Model

__all__ = [
    "GuestImage",
    "GuestImageError",
    "GuestReport",
    "Nic",
    "build_guest_image",
    "kernel_cmdline",
    "parse_report",
]

# Bump when the initramfs layout or the /init contract changes: it is part of
# the cache key, so old cached images are not reused.
FORMAT_VERSION = "1"
DEFAULT_CACHE_ROOT = Path("/var/cache/virtops/guest")
GUEST_MODES = frozenset({"report", "shell"})

# Host locations; module globals so tests can point them at a fake tree.
_BUSYBOX = Path("/bin/busybox")
_MODULES_ROOT = Path("/lib/modules")
_BOOT_DIR = Path("/boot")

# Drivers the guest needs, with the kernel config symbol telling whether the
# kernel has them built in (=y) or as a module (=m).
_REQUIRED_DRIVERS = (
    ("virtio_pci", "CONFIG_VIRTIO_PCI"),
    ("virtio_blk", "CONFIG_VIRTIO_BLK"),
    ("virtio_net", "CONFIG_VIRTIO_NET"),
)
_MODULE_LIST_PATH = "etc/virtops/modules"  # read by /init, see guest-init.sh
_INIT_ALIASES = ("bin/vo-report", "bin/vo-dhcp-event")  # /init dispatches on $0


class GuestImageError(VirtopsError):
    """The host lacks something needed to build the guest image (one sentence, for the CLI)."""


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: pass `kernel`, `initrd` and `kernel_cmdline()` to QEMU or libvirt."""

    kernel: Path
    initrd: Path
    kernel_version: str
    digest: str


# --------------------------------------------------------------------------
# Building the image
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _KernelModule:
    source: Path  # as installed, possibly compressed
    image_path: str  # uncompressed .ko path inside the initramfs


@dataclass(frozen=True)
class _GuestInputs:
    kernel_version: str
    kernel: Path
    busybox: bytes
    init_script: bytes
    modules: tuple[_KernelModule, ...]  # in load order

    def digest(self) -> str:
        hasher = hashlib.sha256()

        def feed(label: str, data: bytes) -> None:
            # Length-prefixed so no two different input sets hash alike.
            hasher.update(b"%s\0%d\0" % (label.encode(), len(data)))
            hasher.update(data)

        feed("format", FORMAT_VERSION.encode())
        feed("kernel-version", self.kernel_version.encode())
        # The kernel itself too: a rebuilt package may keep the version string.
        feed("kernel", self.kernel.read_bytes())
        feed("busybox", self.busybox)
        feed("init", self.init_script)
        for module in self.modules:
            feed(f"module {module.image_path}", module.source.read_bytes())
        return hasher.hexdigest()


def build_guest_image(cache_root: Path | None = None) -> GuestImage:
    """Return the guest kernel and initrd, building them unless already cached."""
    inputs = _collect_inputs()
    digest = inputs.digest()
    target = Path(cache_root or DEFAULT_CACHE_ROOT) / digest
    if not _is_complete(target):
        _publish(target, inputs)
    return GuestImage(
        kernel=target / "vmlinuz",
        initrd=target / "initrd.img",
        kernel_version=inputs.kernel_version,
        digest=digest,
    )


def _collect_inputs() -> _GuestInputs:
    version = _newest_kernel_version()
    return _GuestInputs(
        kernel_version=version,
        kernel=_BOOT_DIR / f"vmlinuz-{version}",
        busybox=_read_busybox(),
        init_script=resources.files(__package__).joinpath("guest-init.sh").read_bytes(),
        modules=tuple(_modules_in_load_order(version)),
    )


def _newest_kernel_version() -> str:
    versions = []
    if _MODULES_ROOT.is_dir():
        versions = [
            entry.name
            for entry in _MODULES_ROOT.iterdir()
            if (entry / "modules.dep").is_file() and (_BOOT_DIR / f"vmlinuz-{entry.name}").is_file()
        ]
    if not versions:
        raise GuestImageError(
            f"No kernel with both {_BOOT_DIR}/vmlinuz-VERSION and {_MODULES_ROOT}/VERSION/modules.dep "
            "was found; install the Debian package linux-image-amd64."
        )
    return max(versions, key=_version_sort_key)


def _version_sort_key(version: str) -> list[tuple[int, int | str]]:
    # Numeric runs compare as numbers so 6.1.0-10 sorts after 6.1.0-9.
    return [(1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"(\d+)", version) if part]


def _read_busybox() -> bytes:
    if not _BUSYBOX.is_file():
        raise GuestImageError(f"{_BUSYBOX} is missing; install the Debian package busybox-static.")
    data = _BUSYBOX.read_bytes()
    if not _is_static_elf(data):
        raise GuestImageError(
            f"{_BUSYBOX} is not statically linked and cannot run in the initramfs; "
            "install the Debian package busybox-static."
        )
    return data


def _is_static_elf(data: bytes) -> bool:
    """True for an ELF without a PT_INTERP program header (no dynamic loader)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # 64-bit little endian
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    pt_interp = 3
    return all(
        int.from_bytes(data[offset : offset + 4], "little") != pt_interp
        for offset in range(phoff, phoff + phnum * phentsize, phentsize)
    )


def _module_name(path: str) -> str:
    # modprobe treats '-' and '_' in module names as the same character.
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _strip_compression(path: str) -> str:
    return re.sub(r"\.(xz|zst|gz)$", "", path)


def _read_modules_dep(modules_dir: Path) -> dict[str, tuple[str, list[str]]]:
    """Map module name -> (path, dependency paths) from depmod's modules.dep."""
    table = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, separator, deps = line.partition(":")
        if separator:
            table[_module_name(path)] = (path, deps.split())
    return table


def _builtin_module_names(modules_dir: Path) -> set[str]:
    builtin = modules_dir / "modules.builtin"
    if not builtin.is_file():
        return set()
    return {_module_name(line) for line in builtin.read_text().split()}


def _kernel_config(version: str) -> dict[str, str]:
    config = _BOOT_DIR / f"config-{version}"
    if not config.is_file():
        return {}
    settings = {}
    for line in config.read_text().splitlines():
        key, separator, value = line.partition("=")
        if separator and not line.startswith("#"):
            settings[key] = value
    return settings


def _modules_in_load_order(version: str) -> list[_KernelModule]:
    modules_dir = _MODULES_ROOT / version
    dep_table = _read_modules_dep(modules_dir)
    builtin = _builtin_module_names(modules_dir)
    config = _kernel_config(version)
    ordered: list[str] = []
    for name, symbol in _REQUIRED_DRIVERS:
        if config.get(symbol) == "y" or name in builtin:
            continue
        if name not in dep_table:
            raise GuestImageError(
                f"Kernel {version} has {name} neither built in nor as a module in {modules_dir}/modules.dep."
            )
        _add_with_dependencies(name, dep_table, ordered)
    return [
        _KernelModule(
            source=modules_dir / path,
            image_path=f"lib/modules/{version}/{_strip_compression(path)}",
        )
        for path in ordered
    ]


def _add_with_dependencies(name: str, dep_table: dict[str, tuple[str, list[str]]], ordered: list[str]) -> None:
    """Depth-first: every dependency lands in `ordered` before its user."""
    path, dependencies = dep_table[name]
    if path in ordered:
        return
    for dependency in dependencies:
        _add_with_dependencies(_module_name(dependency), dep_table, ordered)
    ordered.append(path)


def _decompressed_module(path: Path) -> bytes:
    """busybox insmod loads plain ELF objects only, so unpack at build time."""
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return _zstd_decompress(data, path)
    raise GuestImageError(f"Kernel module {path} has an unknown compression suffix.")


def _zstd_decompress(data: bytes, path: Path) -> bytes:
    try:
        import zstandard  # optional; the zstd command does the same job
    except ImportError:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise GuestImageError(
                f"Kernel module {path} is zstd-compressed; install the Debian package zstd."
            ) from None
        return subprocess.run([zstd, "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _is_complete(target: Path) -> bool:
    return (target / "vmlinuz").is_file() and (target / "initrd.img").is_file()


def _make_dirs_qemu_can_pass(path: Path) -> None:
    """Create the cache directory and its missing parents with mode 0755 whatever the umask:
    libvirt's QEMU runs as libvirt-qemu and must pass through them to read the kernel and initrd
    (libvirt hands it those files at start, but not the directories above them)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)


def _publish(target: Path, inputs: _GuestInputs) -> None:
    """Build in a staging dir next to `target`, then rename: readers never see half an image."""
    _make_dirs_qemu_can_pass(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        shutil.copyfile(inputs.kernel, staging / "vmlinuz")
        (staging / "initrd.img").write_bytes(_initrd(inputs))
        # libvirt's qemu runs unprivileged and must be able to read both files.
        for path in (staging / "vmlinuz", staging / "initrd.img"):
            path.chmod(0o644)
        staging.chmod(0o755)
        if target.exists() and not _is_complete(target):  # a damaged entry: replace it
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not _is_complete(target):  # else a concurrent build won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------
# initramfs: a newc cpio written here so identical inputs give identical bytes
# --------------------------------------------------------------------------

_S_IFDIR, _S_IFREG, _S_IFLNK, _S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000
_NEWC_MAGIC = b"070701"
_CPIO_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class _CpioEntry:
    path: str  # relative to the initramfs root, no leading slash
    mode: int  # file type and permission bits
    data: bytes = b""  # file contents, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # major, minor of a device node


def _initrd(inputs: _GuestInputs) -> bytes:
    archive = _cpio_newc(_initramfs_entries(inputs))
    return gzip.compress(archive, compresslevel=6, mtime=0)  # 9 is 4x slower for 0.4% less


def _initramfs_entries(inputs: _GuestInputs) -> list[_CpioEntry]:
    load_order = "".join(f"/{module.image_path}\n" for module in inputs.modules)
    files = [
        _CpioEntry("init", _S_IFREG | 0o755, inputs.init_script),
        _CpioEntry("bin/busybox", _S_IFREG | 0o755, inputs.busybox),
        # /init's "#!/bin/sh" must resolve before it runs busybox --install.
        _CpioEntry("bin/sh", _S_IFLNK | 0o777, b"busybox"),
        *(_CpioEntry(alias, _S_IFLNK | 0o777, b"/init") for alias in _INIT_ALIASES),
        # The kernel opens /dev/console for /init before devtmpfs is mounted.
        _CpioEntry("dev/console", _S_IFCHR | 0o600, rdev=(5, 1)),
        _CpioEntry(_MODULE_LIST_PATH, _S_IFREG | 0o644, load_order.encode()),
        *(
            _CpioEntry(module.image_path, _S_IFREG | 0o644, _decompressed_module(module.source))
            for module in inputs.modules
        ),
    ]
    empty_dirs = ("proc", "sys", "tmp", "run", "root", "sbin", "usr/bin", "usr/sbin")
    return files + _directories(files, empty_dirs)


def _directories(files: Iterable[_CpioEntry], extra: Iterable[str]) -> list[_CpioEntry]:
    """Every parent directory, since the kernel's unpacker does not create them."""
    paths = set()
    for path in [entry.path for entry in files] + [f"{name}/" for name in extra]:
        parts = path.split("/")[:-1]
        paths.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    # /tmp is shared scratch space and needs the sticky bit like on any system.
    return [_CpioEntry(path, _S_IFDIR | (0o1777 if path == "tmp" else 0o755)) for path in paths]


def _cpio_newc(entries: Iterable[_CpioEntry]) -> bytes:
    # Sorting by path components puts each directory right before its contents.
    ordered = sorted(entries, key=lambda entry: entry.path.split("/"))
    archive = bytearray()
    for inode, entry in enumerate(ordered, start=1):
        archive += _newc_record(entry, inode)
    archive += _newc_record(_CpioEntry(_CPIO_TRAILER, 0), inode=0)
    return bytes(archive)


def _newc_record(entry: _CpioEntry, inode: int) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if entry.mode & _S_IFDIR == _S_IFDIR else 1
    fields = (
        inode, entry.mode, 0, 0, nlink, 0,  # ino mode uid gid nlink mtime
        len(entry.data), 0, 0, *entry.rdev,  # filesize devmajor devminor rdevmajor rdevminor
        len(name), 0,  # namesize check
    )  # fmt: skip
    header = _NEWC_MAGIC + b"".join(b"%08X" % field for field in fields)
    return _pad4(header + name) + _pad4(entry.data)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


# --------------------------------------------------------------------------
# Kernel command line
# --------------------------------------------------------------------------


def kernel_cmdline(mode: str = "report", ping: Sequence[str] = (), screen: bool = False) -> str:
    """Kernel arguments for the guest: a plain string for -append or <cmdline>.

    With `screen` (a VM with a VGA card: `vm create --graphics vnc`) the kernel writes its boot
    messages to the screen's text console too (tty0; the serial console stays /dev/console), and
    the guest shows a banner and its report there and runs a second shell on it (tty1), so that
    keys typed on the screen reach a shell."""
    if mode not in GUEST_MODES:
        raise ValueError(f"Guest mode {mode!r} is not one of {sorted(GUEST_MODES)}.")
    if isinstance(ping, str):
        raise ValueError("ping must be a sequence of IP addresses, not a single string.")
    arguments = ["console=tty0", "console=ttyS0", "panic=-1", "virtops.screen=1"] if screen \
        else ["console=ttyS0", "panic=-1", "quiet"]
    arguments.append(f"virtops.mode={mode}")
    targets = [_ip_address(target) for target in ping]
    if targets:
        arguments.append("virtops.ping=" + ",".join(targets))
    return " ".join(arguments)


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"Ping target {text!r} is not an IP address.") from None


# --------------------------------------------------------------------------
# Report parsing
# --------------------------------------------------------------------------


class Nic(Model):
    """One Ethernet interface of the guest and its DHCP lease, if it has one."""

    model_config = ConfigDict(frozen=True)

    name: str
    mac: str
    ip: str | None = None  # address with prefix, e.g. "192.168.122.57/24"
    router: str | None = None
    lease_server: str | None = None


class GuestReport(Model):
    """What the guest saw: block device sizes in bytes, NICs, ping results by target."""

    model_config = ConfigDict(frozen=True)

    disks: dict[str, int]
    nics: list[Nic]
    pings: dict[str, bool]
    complete: bool


# A report line may follow a shell prompt or firmware output on the same
# console line, so the keyword only has to start a word, not the line.
_REPORT_LINE = re.compile(r"\bVIRTOPS(?:-(?P<marker>BEGIN|END)|[ \t]+(?P<body>.*?))[ \t]*$")
# Terminal control sequences: the shell's cursor queries, firmware screen resets.
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_]|[ -/]*[0-~])")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", re.IGNORECASE)


@dataclass
class _Block:
    lines: list[str]
    complete: bool = False


def parse_report(text: str) -> GuestReport:
    """Parse the last complete report block in console output (see module docstring).

    When no block is complete (the console was cut short), the last started
    block is returned with ``complete=False``.
    """
    blocks = _report_blocks(text)
    if not blocks:
        raise ValueError("The console output holds no VIRTOPS-BEGIN report block.")
    complete = [block for block in blocks if block.complete]
    return _report_from_block(complete[-1] if complete else blocks[-1])


def _report_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    lines = _ESCAPE_SEQUENCE.sub("", text).replace("\r", "\n").split("\n")
    for index, line in enumerate(lines):
        match = _REPORT_LINE.search(line)
        # Text after the last newline may be a line cut off mid-way; a body
        # line there can only belong to an incomplete block, so drop it.
        cut_off = index == len(lines) - 1 and match is not None and match["body"] is not None
        if match is None or cut_off:
            continue
        if match["marker"] == "BEGIN":
            current = _Block(lines=[])
            blocks.append(current)
        elif match["marker"] == "END":
            if current is not None:
                current.complete = True
            current = None
        elif current is not None:
            current.lines.append(match["body"])
    return blocks


def _report_from_block(block: _Block) -> GuestReport:
    disks: dict[str, int] = {}
    nics: list[Nic] = []
    pings: dict[str, bool] = {}
    for line in block.lines:
        kind, _, rest = line.partition(" ")
        fields = rest.split()
        if kind == "disk":
            name, size = _disk_fields(fields, line)
            disks[name] = size
        elif kind == "nic":
            nics.append(_nic_from_fields(fields, line))
        elif kind == "ping":
            target, reachable = _ping_fields(fields, line)
            pings[target] = reachable
        # Other kinds come from a newer guest; skipping them keeps old parsers working.
    return GuestReport(disks=disks, nics=nics, pings=pings, complete=block.complete)


def _malformed(line: str) -> ValueError:
    return ValueError(f"Report line {('VIRTOPS ' + line)!r} is malformed.")


def _disk_fields(fields: list[str], line: str) -> tuple[str, int]:
    if len(fields) != 2 or not fields[1].isdigit():
        raise _malformed(line)
    return fields[0], int(fields[1])


def _ping_fields(fields: list[str], line: str) -> tuple[str, bool]:
    if len(fields) != 2 or fields[1] not in ("ok", "fail"):
        raise _malformed(line)
    return fields[0], fields[1] == "ok"


def _nic_from_fields(fields: list[str], line: str) -> Nic:
    if not fields:
        raise _malformed(line)
    values = dict(field.partition("=")[::2] for field in fields[1:])
    mac = values.get("mac", "")
    if not _MAC.fullmatch(mac):
        raise _malformed(line)
    try:
        return Nic(
            name=fields[0],
            mac=mac.lower(),
            ip=_optional(values.get("ip"), ipaddress.ip_interface),
            router=_optional(values.get("router"), ipaddress.ip_address),
            lease_server=_optional(values.get("server"), ipaddress.ip_address),
        )
    except ValueError:
        raise _malformed(line) from None


def _optional(value: str | None, parse: Callable[[str], object]) -> str | None:
    """None for a missing or "none" field, else the value checked by `parse`."""
    if value in (None, "none"):
        return None
    return str(parse(value))


def wait_for_report(console, condition, timeout_s: float = 90) -> GuestReport:
    """Ask a shell-mode guest for reports (`vo-report` on its console) until one satisfies
    `condition`; console is a virtops.ops.vm.Console. Raises TimeoutError with the last report seen."""
    import time

    since = len(console.buffer)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline and not console.closed:
        console.write(b"vo-report\n")
        text = console.wait_for(lambda t: _satisfied(t, condition), min(10, max(0.1, deadline - time.monotonic())), since)
        if _satisfied(text, condition):
            return parse_report(text)
        if "VIRTOPS-END" in text:
            last = parse_report(text)
    raise TimeoutError(f"the guest printed no report that satisfies the check within {timeout_s:.0f} s; last: {last}")


def _satisfied(text: str, condition) -> bool:
    if "VIRTOPS-END" not in text:
        return False
    try:
        return condition(parse_report(text))
    except ValueError:
        return False
