"""The files of a lab's own sshd (lab/sshd.py), made without starting anything: its config takes
keys only on the lab's address, the client's known hosts hold the lab's host key under both names
ssh looks up, and the keeper is only signalled when it catches the signal. The sshd itself runs in
tests/lab/test_remote_ssh.py."""
from __future__ import annotations

import signal

import pytest

from virtops.lab import sshd as lab_sshd
from virtops.lab.labhost import Lab


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    monkeypatch.setattr(lab_sshd, "NETNS_ETC", tmp_path / "etc-netns")  # never the machine's /etc/netns
    lab = Lab("unit", root=tmp_path)
    server = lab_sshd.LabSshd(lab, "198.51.100.2")
    server.dir.mkdir(parents=True)
    server._make_keys()
    server._write_config()
    server._write_client_config()
    return server


def test_config_takes_keys_only_on_the_labs_address(sshd):
    lines = sshd.config.read_text().splitlines()
    assert [l for l in lines if l.startswith("ListenAddress")] == ["ListenAddress 198.51.100.2:22",
                                                                   "ListenAddress 198.51.100.2:2222"]
    for setting in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
                    f"HostKey {sshd.host_key}", f"AuthorizedKeysFile {sshd.dir / 'authorized_keys'}",
                    "PermitOpen 127.0.0.1:*"):
        assert setting in lines
    assert (sshd.dir / "authorized_keys").read_text() == sshd.client_key.with_suffix(".pub").read_text()


def test_client_knows_the_host_key_on_both_ports(sshd):
    kind, key = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    assert (sshd.client_etc / "ssh_known_hosts").read_text() == f"198.51.100.2,[198.51.100.2]:2222 {kind} {key}\n"
    assert "UserKnownHostsFile /dev/null" in (sshd.client_etc / "ssh_config").read_text()
    assert sshd.uri_on(2222) == f"qemu+ssh://root@198.51.100.2:2222/system?keyfile={sshd.client_key}"


def test_stop_removes_the_client_config_and_empty_folders(sshd):
    sshd.stop()  # no sshd runs: nothing to signal
    assert not lab_sshd.NETNS_ETC.exists()


def test_catches_reads_the_signal_mask():
    import os

    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        assert not lab_sshd.catches(os.getpid(), signal.SIGUSR2)
        signal.signal(signal.SIGUSR2, lambda *_: None)
        assert lab_sshd.catches(os.getpid(), signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, previous)
