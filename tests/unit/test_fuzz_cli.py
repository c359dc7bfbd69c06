"""The command line under random input (hypothesis): every command that takes a name, a size, an
address or a reference gets odd text in each place, against libvirt's in-process test driver.
Whatever the input, the answer is a success (0), a refusal in sentences (1: every line `error:`,
`warning:` or the host notice) or a usage error (2), and never a traceback."""
from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtops.cli import run

# Text a user could type: any character but NUL (no argv holds one), some of it shaped like the
# values the commands expect, so that the checks behind the parsers are reached too.
ODD = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
SHAPED = st.sampled_from(["192.168.200.0/24", "192.168.200.128-192.168.200.254", "1000M", "5G", "0",
                          "99999999999999999999999", "-1", "default", "default-pool", "default-pool/x",
                          "test", "/var/lib/libvirt/x", "52:54:00:00:00:01", "vdb", "virtio", "nat",
                          "path=/var/lib/libvirt/x", "protocol=nbd,hosts=nbd.example.org:10809", "protocol=rbd",
                          "br0", "eth0,mode=vepa", "nbd", "mon1:6789", "passthrough"])
VALUE = st.one_of(ODD, SHAPED)

# Commands that read or change the host's objects; the test driver keeps nothing after the command.
TEMPLATES = [
    ("net", "create", "{}", "--subnet", "{}", "--dhcp", "{}"),
    ("net", "create", "{}", "--mode", "route", "--dev", "{}", "--subnet", "{}"),
    ("net", "info", "{}"),
    ("net", "edit", "default", "--subnet", "{}", "--yes"),
    ("net", "host", "add", "default", "{}", "{}"),
    ("net", "dumpxml", "{}"),
    ("pool", "create", "{}", "--type", "dir", "--target", "{}", "--mode", "{}"),
    ("pool", "info", "{}"),
    ("vol", "create", "default-pool", "{}", "--capacity", "{}", "--allocation", "{}"),
    ("vol", "resize", "{}", "{}"),
    ("vol", "info", "{}"),
    ("vol", "list", "{}"),
    ("vm", "create", "{}", "--memory", "{}", "--disk", "{}", "--network", "{}"),
    ("vm", "attach-disk", "{}", "{}", "--target", "{}"),
    ("vm", "attach-nic", "test", "--network", "{}", "--mac", "{}"),
    ("vm", "create", "{}", "--memory", "64M", "--bridge", "{}", "--direct", "{}"),
    ("vm", "attach-nic", "test", "--direct", "{}", "--mode", "{}"),
    ("vm", "attach-disk", "test", "{}", "--protocol", "{}", "--hosts", "{}"),
    ("vm", "set", "test", "--memory", "{}", "--vcpus", "{}"),
    ("vm", "info", "{}"),
    ("host", "info"),
]


def _argv(template: tuple[str, ...], values: list[str]) -> list[str]:
    filled, it = [], iter(values)
    for part in template:
        filled.append(next(it) if part == "{}" else part)
    return filled


# The fixtures are reset by hand in each example (argv set and put back, the output read), so
# hypothesis may share them between examples.
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(TEMPLATES), values=st.lists(VALUE, min_size=4, max_size=4))
def test_odd_input_gets_sentences_not_tracebacks(monkeypatch, capsys, template, values):
    argv = ["virtops", "-c", "test:///default", *_argv(template, values)]
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        code = run(argv[1:])  # the listings through cli/quick.py, everything else through click
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err + out, argv
    if code == 1:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and all(line.startswith(("error:", "warning:", "host:")) for line in lines), (argv, err)


def test_the_fuzzer_reaches_a_refusal(monkeypatch, capsys):
    """The harness itself: a known bad value is refused with exit code 1 and a sentence."""
    monkeypatch.setattr(sys, "argv", ["virtops", "-c", "test:///default", "net", "create", "n1", "--subnet", "nope"])
    assert run(sys.argv[1:]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: --subnet: 'nope' is not an IPv4 network")

