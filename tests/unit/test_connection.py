"""Connection rules: which URI is used, and how errors read."""
from __future__ import annotations

import subprocess
import sys

import libvirt
import pytest

from virtops.daemon.connection import Connection, resolve_uri
from virtops.base.errors import HostUnreachable, InvalidInput, from_libvirt, one_sentence
from virtops.lab.labhost import Lab


def test_explicit_uri_wins_over_environment(monkeypatch):
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu:///session")
    assert resolve_uri("test:///default") == "test:///default"


def test_environment_wins_over_default(monkeypatch):
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu:///session")
    assert resolve_uri(None) == "qemu:///session"


def test_default_is_qemu_system(monkeypatch):
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    assert resolve_uri(None) == "qemu:///system"


def test_lab_shorthand_is_the_lab_socket(monkeypatch, tmp_path):
    monkeypatch.setenv("VIRTOPS_LAB_ROOT", str(tmp_path))
    assert resolve_uri("lab:alpha") == f"qemu+unix:///system?socket={tmp_path}/alpha/run/libvirt-sock"
    assert resolve_uri("lab:alpha") == Lab("alpha").uri


@pytest.mark.parametrize("spelling", ["{root}/", "{root}//./", "{root}/./labs/..", "//{root}"])
def test_a_lab_uri_is_one_string_however_the_root_is_spelt(monkeypatch, tmp_path, spelling):
    """The light resolution (lab/address.py) and the lab itself (labhost.Lab) spell the socket
    alike: host locks are taken per URI string."""
    monkeypatch.setenv("VIRTOPS_LAB_ROOT", spelling.format(root=tmp_path))
    assert resolve_uri("lab:alpha") == Lab("alpha").uri
    assert Lab("alpha").socket == Lab("alpha").state_dir / "run" / "libvirt-sock"


def test_a_lab_name_out_of_rule_is_refused_before_any_connection():
    with pytest.raises(InvalidInput, match="lab name: 'Alpha!' is not accepted; use 1-20 lowercase"):
        resolve_uri("lab:Alpha!")


def test_resolving_a_lab_imports_no_more_of_the_lab():
    """-c lab:NAME before a listing: lab/address.py only, not labhost.py and what it imports."""
    code = ("import sys; from virtops.daemon.connection import resolve_uri; resolve_uri('lab:alpha'); "
            "sys.exit(sorted(m for m in sys.modules if m.startswith('virtops.lab.')) != ['virtops.lab.address'])")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_missing_socket_is_one_sentence_with_advice(tmp_path):
    uri = f"qemu+unix:///system?socket={tmp_path}/none"
    with pytest.raises(HostUnreachable) as refused:
        Connection(uri).conn
    message = str(refused.value)
    assert message.startswith(f"No libvirt daemon answers at {uri}") and message.endswith(".")
    assert "\n" not in message


def test_libvirt_errors_become_one_sentence(test_host):
    with pytest.raises(libvirt.libvirtError) as raised:
        test_host.conn.networkLookupByName("nope")
    err = from_libvirt(raised.value, "looking up network nope")
    assert str(err).startswith("looking up network nope failed: ")
    assert "\n" not in str(err) and str(err).endswith(".")


def test_one_sentence_keeps_first_line():
    assert one_sentence("first line\nsecond line") == "first line."
    assert one_sentence("") == "unknown libvirt error."


def test_test_driver_host_info(test_host):
    info = test_host.info()
    assert info.hypervisor == "TEST"
    assert info.cpus == 2


def test_the_host_is_announced_only_when_not_obvious(monkeypatch):
    from virtops.cli.common import _host_notice

    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)
    assert _host_notice("qemu:///system", "qemu:///system") is None
    assert _host_notice(None, "qemu:///system") is None
    assert "test driver" in _host_notice("test:///default", "test:///default")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://root@kvm1/system")
    assert _host_notice(None, "qemu+ssh://root@kvm1/system").endswith("(from $LIBVIRT_DEFAULT_URI)")
    assert _host_notice("qemu:///system", "qemu:///system") is None


def test_daemons_on_this_machine_share_one_host_check_key():
    from virtops.daemon.connection import on_this_machine as _is_local

    assert _is_local("qemu:///system") and _is_local("qemu+unix:///system?socket=/var/lib/virtops/labs/a/run/libvirt-sock")
    assert not _is_local("qemu+ssh://root@far/system") and not _is_local("qemu+tcp://198.51.100.2/system")
    assert not _is_local("test:///default")


def test_only_a_lab_seen_from_its_outside_namespace_has_a_loopback_way_in():
    from virtops.daemon.connection import loopback_connection

    # This process runs in no lab's outside namespace: the labs' uplink address is no lab from here,
    # and another host has no way in (the display refuses those in its own words).
    assert loopback_connection("qemu+tcp://198.51.100.2/system", 5900) is None
    assert loopback_connection("qemu+tcp://kvm1.example.org/system", 5900) is None
    assert loopback_connection("qemu+tls://198.51.100.9/system", 5900) is None
