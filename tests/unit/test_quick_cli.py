"""The listing and info commands have two parsers reading one declaration (cli/listings.py): the
light one (cli/quick.py) runs a plainly written listing without importing click or pydantic, and
click takes everything else. Both must answer alike: the same output, errors and exit codes."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from virtops.cli import quick
from virtops.cli.common import run_main
from virtops.cli.listings import LISTINGS
from virtops.cli.root import cli

URI = ["-c", "test:///default"]  # libvirt's test driver: each connection starts from the same objects
LISTING_LINES = [
    ["net", "list"], ["net", "list", "--all", "--json"], ["net-list", "-a"], ["net", "info", "default"],
    ["net", "info", "nosuch"], ["pool", "list", "--all"], ["pool-list", "--json"], ["pool", "info", "default-pool"],
    ["pool-info", "nosuch"], ["vol", "list", "default-pool"], ["vol", "list", "nosuch"], ["vol", "info", "x"],
    ["vol", "info", "default-pool/nosuch"], ["vm", "list"], ["vm", "list", "--all", "--long"], ["list", "-a", "-l"],
    ["vm", "list", "--json", "-a"], ["vm", "info", "test"], ["vm", "info", "test", "--json"], ["dominfo", "nosuch"],
    ["host", "info"], ["host", "info", "--json"], ["host", "info", "--cpu"],
]


@pytest.mark.parametrize("words", LISTING_LINES, ids=" ".join)
def test_the_light_parser_answers_as_click_does(monkeypatch, capsys, words):
    argv = [*URI, *words]
    monkeypatch.setattr(sys, "argv", ["virtops", *argv])
    assert quick.parse(argv) is not None, "a plainly written listing is the light parser's"
    quick_code = quick.run_quick(argv)
    quick_out = capsys.readouterr()
    click_code = run_main(cli, argv)
    click_out = capsys.readouterr()
    assert (quick_code, quick_out.out, quick_out.err) == (click_code, click_out.out, click_out.err)
    assert quick_code in (0, 1)


@pytest.mark.parametrize("words", [
    ["net", "list", "--help"], ["-h"], ["--version"], ["net", "list", "-al"], ["net", "list", "--json=yes"],
    ["net", "list", "--bogus"], ["vm", "info"], ["vm", "info", "a", "b"], ["net", "create", "n1"], ["net"],
    [], ["-c"], ["-cX", "net", "list"], ["net", "list", "--", "x"], ["-c", "x", "-H", "all", "net", "list"],
    ["-H", "all", "net", "info", "default"], ["net", "list", "-c", "x"], ["--debug=1", "net", "list"],
], ids=" ".join)
def test_anything_else_is_left_to_click(words):
    assert quick.parse(words) is None


def test_shell_completion_is_left_to_click(monkeypatch):
    monkeypatch.setenv("_VIRTOPS_COMPLETE", "bash_complete")
    assert quick.parse(["net", "list"]) is None


def test_the_root_options_and_fleet_versions_are_read_as_declared():
    body, ctx, params = quick.parse(["--connect=lab:a", "--debug", "vm", "list", "-l", "--all"])
    assert (ctx.uri, ctx.hosts, ctx.debug, params) == ("lab:a", None, True, {"show_all": True, "long": True,
                                                                             "as_json": False})
    body, ctx, params = quick.parse(["-H", "tag:web", "pool-list", "--all"])
    assert (body.__name__, ctx.hosts, params) == ("fleet_pool_list", "tag:web", {"show_all": True, "as_json": False})
    body, ctx, params = quick.parse(["-H", "all", "host", "info", "--cpu"])
    assert (body.__name__, params) == ("fleet_host_info", {"sample_cpu": True, "as_json": False})


def test_click_builds_the_same_commands_from_the_declarations():
    from click import Context

    for listing in LISTINGS:
        command = cli.get_command(Context(cli), listing.group).get_command(Context(cli), listing.name)
        options = {name for param in command.params for name in getattr(param, "opts", ())}
        assert options >= {name for flag in listing.flags for name in flag.names}, listing.name
        arguments = [param.name for param in command.params if param.param_type_name == "argument"]
        assert arguments == [arg.name for arg in listing.args], listing.name
        assert command.help == listing.run.__doc__


LINES_THAT_STAY_LIGHT = [["net", "list", "--all"], ["pool", "info", "default-pool"], ["vol", "list", "default-pool"],
                         ["vm", "list", "--all"], ["vm", "info", "test"], ["host", "info"], ["net-list"]]


# What a listing must not import, for its start-up (bench/bench_cli_startup.py): click, pydantic,
# lxml (xmlmodels/read.py reads with ElementTree), dataclasses (with inspect), a thread pool (with
# logging), fractions (base/units.py parses in integers), the lab beyond lab/address.py, libvirt.py
# (base/light_libvirt.py calls libvirtmod), typing (TYPE_CHECKING = False where it is needed), pathlib
# (with urllib.parse and ipaddress) and OpenSSL's hashlib (host info: daemon/facts.py).
HEAVY = ('click', 'pydantic', 'lxml', 'dataclasses', 'inspect', 'concurrent.futures', 'logging', 'fractions',
         'virtops.lab.labhost', 'libvirt', 'typing', 'pathlib', '_hashlib')


def loaded_of(watched: tuple[str, ...], *argv: str, env: dict | None = None) -> list[str]:
    """Which of the `watched` modules `virtops ARGV` had imported when it ended, run as its own process."""
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print(sorted(m for m in {watched!r} if m in sys.modules)))\n"
            "from virtops.cli import main\n"
            f"sys.argv = ['virtops', *{list(argv)!r}]\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.splitlines()[-1])  # the list the probe printed


@pytest.mark.parametrize("words", LINES_THAT_STAY_LIGHT, ids=" ".join)
def test_a_listing_imports_nothing_heavy(words):
    assert loaded_of(HEAVY, *URI, *words) == []


@pytest.mark.parametrize("words", [["-H", "t1", "vm", "list", "--all"], ["-c", "t1", "net", "list"]], ids=" ".join)
def test_a_listing_of_a_registered_host_imports_nothing_heavy(words, tmp_path):
    """-c NAME and -H read the registry: its parsed file is kept (no yaml after the first read), and
    the fleet's gathering is as light as a listing."""
    env = {**os.environ, "VIRTOPS_HOSTS": str(tmp_path / "hosts.yaml"), "VIRTOPS_SYSTEM_HOSTS": ""}
    subprocess.run([sys.executable, "-m", "virtops", "host", "add", "t1", "test:///default"], env=env, check=True,
                   capture_output=True)
    heavy = HEAVY + ('yaml', 'pathlib')
    assert loaded_of(heavy, *words, env=env) == []


@pytest.mark.parametrize("words", LISTING_LINES, ids=" ".join)
def test_a_listing_in_its_own_process_answers_as_click_does(capsys, words):
    """The `virtops` command runs a listing on one host through base/light_libvirt.py (libvirtmod
    without libvirt.py): the same output, errors and exit code as click over libvirt.py."""
    argv = [*URI, *words]
    done = subprocess.run([sys.executable, "-m", "virtops", *argv], capture_output=True, text=True, timeout=120)
    click_code = run_main(cli, argv)
    click_out = capsys.readouterr()
    assert (done.returncode, done.stdout, done.stderr) == (click_code, click_out.out, click_out.err)


@pytest.mark.parametrize("words", [["vm", "list"], ["host", "info"], ["net", "list"]], ids=" ".join)
def test_lab_name_resolves_without_re(tmp_path, words):
    """-c lab:NAME resolves by plain strings (lab/address.py): re, with enum, would be 3 ms of a
    listing that reads no XML (vm list of stopped VMs, host info). Here the lab is not up: the
    listing fails at the connection, having imported what it would have."""
    light = ("re", "enum", "threading")
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print(sorted(m for m in {light!r} if m in sys.modules)))\n"
            "from virtops.cli import main\n"
            f"sys.argv = ['virtops', '-c', 'lab:nosuchlab', *{words!r}]\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VIRTOPS_LAB_ROOT": str(tmp_path)})
    assert done.returncode == 1 and "No libvirt daemon answers" in done.stderr, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("words, absent", [
    (["pool", "list", "--all"], ("ipaddress", "virtops.xmlmodels.network", "virtops.xmlmodels.domain")),
    (["pool", "info", "default-pool"], ("ipaddress", "virtops.xmlmodels.network", "virtops.xmlmodels.domain")),
    (["vol", "list", "default-pool"], ("ipaddress", "virtops.xmlmodels.network")),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_a_storage_listing_imports_no_network_or_domain_model_it_does_not_read(words, absent):
    """ops/rows.py imports the network model (with ipaddress, 1.5 ms) where it reads a network, and
    the domain model where it reads who uses a volume."""
    assert loaded_of(absent, *URI, *words) == []
