"""The ssh command line of the display's tunnel (ops/screens.ssh_tunnel_argv): what libvirt's own
qemu+ssh:// transport takes from the URI (user, port, keyfile=, no_verify=) and nothing a URI could
turn into an option. The tunnel itself runs against a lab's real sshd in tests/lab/test_remote_ssh.py."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from virtops.base.errors import InvalidInput
from virtops.ops.screens import ssh_tunnel_argv


def argv(uri: str) -> list[str]:
    return ssh_tunnel_argv(urlsplit(uri), 5901)


def test_plain_host():
    assert argv("qemu+ssh://kvm1/system") == ["ssh", "-o", "BatchMode=yes", "-W", "127.0.0.1:5901", "--", "kvm1"]


def test_user_port_keyfile_and_no_verify_of_the_uri():
    assert argv("qemu+ssh://ops@10.0.0.5:2222/system?keyfile=/keys/id_ed25519&no_verify=1") == [
        "ssh", "-o", "BatchMode=yes", "-W", "127.0.0.1:5901", "-p", "2222", "-i", "/keys/id_ed25519",
        "-o", "StrictHostKeyChecking=no", "--", "ops@10.0.0.5"]


def test_no_verify_0_keeps_host_key_checking():
    assert "StrictHostKeyChecking=no" not in argv("qemu+ssh://kvm1/system?no_verify=0")


def test_a_keyfile_that_looks_like_an_option_stays_the_argument_of_i():
    line = argv("qemu+ssh://kvm1/system?keyfile=-oProxyCommand=x")
    assert line[line.index("-i") + 1] == "-oProxyCommand=x" and line[-2:] == ["--", "kvm1"]


@pytest.mark.parametrize("uri", ["qemu+ssh://-oProxyCommand=x/system", "qemu+ssh://-l@kvm1/system"])
def test_option_like_hosts_and_users_are_refused(uri):
    with pytest.raises(InvalidInput, match="uri"):
        argv(uri)
