"""The QEMU-access rule (ops.access): mode, owner and group against QEMU's user and groups, the
DAC label read from libvirt's capabilities, and the sentences of a refusal."""
from __future__ import annotations

import os

import pytest

from virtops.base.errors import CORE_WORDING, CommandLineWording
from virtops.ops.access import (READ, ROOT, TRAVERSE, DaemonFiles, Entry, QemuUser, fixed_mode, parse_dac_label,
                                permitted, unreachable, unreadable)

QEMU = QemuUser(64055, 64055, frozenset({64055, 107}), "libvirt-qemu")


@pytest.mark.parametrize("mode, owner, group, want, allowed", [
    (0o700, 0, 0, TRAVERSE, False),          # the handbook's pool: root:root 0700
    (0o711, 0, 0, TRAVERSE, True),           # the fix
    (0o701, 0, 0, TRAVERSE, True),
    (0o710, 0, 107, TRAVERSE, True),         # a supplementary group (kvm) lets it through
    (0o710, 0, 0, TRAVERSE, False),
    (0o700, 64055, 0, TRAVERSE, True),       # QEMU owns it
    (0o077, 64055, 64055, TRAVERSE, False),  # the owner's class alone counts, even when others may
    (0o707, 0, 64055, TRAVERSE, False),      # the group's class alone counts for a member
    (0o711, 0, 0, READ, False),              # x lets it pass, not list or read
    (0o644, 0, 0, READ, True),
    (0o640, 0, 107, READ, True),
    (0o600, 0, 0, READ, False),
])
def test_permitted_uses_exactly_one_class(mode, owner, group, want, allowed):
    assert permitted(mode, owner, group, QEMU, want) is allowed


def test_a_root_qemu_has_no_override():
    """libvirt clears QEMU's capabilities, so root reaches only what the bits allow."""
    assert permitted(0o700, 0, 0, ROOT, TRAVERSE)
    assert not permitted(0o700, 64055, 64055, ROOT, TRAVERSE)
    assert permitted(0o701, 64055, 64055, ROOT, TRAVERSE)


@pytest.mark.parametrize("mode, owner, group, fixed", [
    (0o700, 0, 0, 0o711), (0o750, 0, 0, 0o751), (0o700, 0, 107, 0o710), (0o600, 64055, 0, 0o700)])
def test_fixed_mode_adds_the_bit_of_qemus_class(mode, owner, group, fixed):
    assert fixed_mode(mode, owner, group, QEMU) == fixed
    assert permitted(fixed, owner, group, QEMU, TRAVERSE)


CAPS = """<capabilities><host><uuid>x</uuid>
  <secmodel><model>none</model><doi>0</doi></secmodel>
  <secmodel><model>dac</model><doi>0</doi>
    <baselabel type='kvm'>+64055:+107</baselabel><baselabel type='qemu'>+64055:+64055</baselabel>
  </secmodel></host></capabilities>"""


def test_the_dac_label_is_read_per_domain_type():
    assert parse_dac_label(CAPS, "kvm") == (64055, 107)
    assert parse_dac_label(CAPS, "qemu") == (64055, 64055)
    assert parse_dac_label(CAPS, "xen") == (64055, 107)  # an unknown type: the kvm label


def test_without_a_dac_model_qemu_is_root():
    assert parse_dac_label("<capabilities><host><secmodel><model>none</model></secmodel></host></capabilities>") is None
    assert parse_dac_label("<capabilities><host/></capabilities>") is None


def test_the_refusal_names_disk_pool_mode_owner_user_and_fix():
    pool_dir = Entry("/var/lib/libvirt/test", 0o700, 0, 0)
    text = unreachable("disk test/sys (vda)", "test", pool_dir, None, QEMU)
    assert CommandLineWording().words(text) == ("QEMU runs as libvirt-qemu (64055:64055) and cannot reach disk test/sys (vda): the directory "
                    "/var/lib/libvirt/test of pool test has mode 0700, owner 0:0; let QEMU through with "
                    "`virtops pool set test --mode 0711`.")
    assert CORE_WORDING.words(text).endswith("let QEMU through with the pool's mode='0711'.")  # no command elsewhere
    assert unreachable("disk test/sys (vda)", "test", Entry("/var/lib/libvirt/test", 0o711, 0, 0), None, QEMU) is None
    assert unreachable("disk x", "test", None, None, QEMU) is None  # libvirt reported no permissions


def _tree(tmp_path, *dirs: tuple[str, int]) -> DaemonFiles:
    """A fake root directory for the daemon (pytest makes tmp_path 0700: it plays / here)."""
    tmp_path.chmod(0o755)
    for path, mode in dirs:
        (tmp_path / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, mode in dirs:
        os.chmod(tmp_path / path.lstrip("/"), mode)
    return DaemonFiles(str(tmp_path))


def test_a_parent_directory_qemu_cannot_pass_is_named(tmp_path):
    files = _tree(tmp_path, ("/srv", 0o700), ("/srv/pools/a", 0o755))
    text = unreachable("disk a/x (vda)", "a", files.stat("/srv/pools/a"), files, QEMU)
    assert text is not None and "/srv, above the directory of pool a, has mode 0700" in text
    assert "chmod o+x /srv" in text
    os.chmod(tmp_path / "srv", 0o711)
    assert unreachable("disk a/x (vda)", "a", files.stat("/srv/pools/a"), files, QEMU) is None


def test_kernel_files_must_exist_and_be_readable(tmp_path):
    files = _tree(tmp_path, ("/cache/guest", 0o755))
    kernel = tmp_path / "cache/guest/vmlinuz"
    assert "is not a file on the host" in unreadable("kernel", "/cache/guest/vmlinuz", files, QEMU)
    kernel.write_bytes(b"k")
    kernel.chmod(0o600)  # libvirt hands it to QEMU's user at start: the owner's read bit suffices
    assert unreadable("kernel", "/cache/guest/vmlinuz", files, QEMU) is None
    kernel.chmod(0o000)
    assert "cannot read kernel /cache/guest/vmlinuz: it has mode 0000" in unreadable(
        "kernel", "/cache/guest/vmlinuz", files, QEMU)
    kernel.chmod(0o644)
    os.chmod(tmp_path / "cache", 0o700)
    text = unreadable("kernel", "/cache/guest/vmlinuz", files, QEMU)
    assert "/cache has mode 0700" in text and "chmod o+x /cache" in text
    assert unreadable("kernel", "/nowhere", None, QEMU) is None  # a remote host's files are not looked at
