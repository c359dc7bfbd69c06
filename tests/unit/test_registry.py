"""The host registry (daemon/registry.py) and the fleet's selection and gathering, without lab hosts:
the file, its refusals (file unchanged), two processes adding at once, -c NAME, -H selectors, and a
daemon that accepts connections and never answers (a listening socket nobody serves)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virtops.base.errors import InvalidInput, NotFound, VirtopsError
from virtops.daemon import registry
from virtops.daemon.connection import Connection, resolve_uri


@pytest.fixture(autouse=True)
def files(tmp_path, monkeypatch):
    """A user's file and a system file of the test's own; no lab root with running labs."""
    monkeypatch.setenv("VIRTOPS_HOSTS", str(tmp_path / "user" / "hosts.yaml"))
    monkeypatch.setenv("VIRTOPS_SYSTEM_HOSTS", str(tmp_path / "etc" / "hosts.yaml"))
    monkeypatch.setenv("VIRTOPS_LAB_ROOT", str(tmp_path / "labs"))
    return tmp_path


def user_text() -> bytes:
    return Path(registry.user_file()).read_bytes()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virtops", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


# -- the file ---------------------------------------------------------------------------------
def test_add_tag_remove_round_trip():
    registry.add("web1", "qemu+ssh://root@web1.example.org/system", ["web", "prod"])
    registry.add("db1", "qemu+tls://db1.example.org/system")
    registry.tag("db1", ["db", "prod"])
    registry.tag("web1", ["prod"], untag=True)
    hosts = {h.name: h for h in registry.registered()}
    assert hosts["web1"].tags == ("web",) and hosts["db1"].tags == ("db", "prod")
    assert hosts["db1"].uri == "qemu+tls://db1.example.org/system"
    assert oct(Path(registry.user_file()).stat().st_mode & 0o777) == "0o600"
    registry.remove("web1")
    assert [h.name for h in registry.registered()] == ["db1"]
    assert not list(Path(registry.user_file()).parent.glob(".hosts.yaml.*")), "no temporary file is left behind"


def test_a_read_file_is_kept_parsed_and_an_edit_by_hand_is_seen_at_once():
    """-c NAME and -H read the registry before every listing; yaml's import costs more than the rest
    of it, so a file read once is kept parsed beside it, for exactly that text."""
    registry.add("web1", "qemu+ssh://root@web1/system", ["web"])
    probe = ("import sys; from virtops.daemon import registry; "
             "print([h.uri for h in registry.registered()], 'yaml' in sys.modules)")
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert answer.strip() == "['qemu+ssh://root@web1/system'] False"  # add kept what it wrote
    Path(registry.user_file()).write_text("hosts:\n  web1: {uri: 'qemu+ssh://root@elsewhere/system'}\n")
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert answer.strip() == "['qemu+ssh://root@elsewhere/system'] True"  # the edit, parsed
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert answer.strip() == "['qemu+ssh://root@elsewhere/system'] False"  # and kept


def test_a_broken_cache_is_only_slower():
    registry.add("web1", "qemu+ssh://root@web1/system", ["web"])
    cache = Path(registry.user_file() + ".parsed.json")
    for broken in ("{not json", json.dumps({"format": registry.CACHE_FORMAT, "files": {registry.user_file(): {
            "text": Path(registry.user_file()).read_text(), "hosts": [["web1"]]}}}), "[]"):
        cache.write_text(broken)
        assert [(h.name, h.uri, h.tags) for h in registry.registered()] == [("web1", "qemu+ssh://root@web1/system", ("web",))]


@pytest.mark.parametrize("change, sentence", [
    (lambda: registry.add("web1", "qemu:///system"), "host 'web1' is already registered"),
    (lambda: registry.add("web2", "not a uri"), "URI: 'not a uri' is not a libvirt URI"),
    (lambda: registry.add("web2", "qemu+bogus://h/system"), "'qemu+bogus' is not a libvirt scheme"),
    (lambda: registry.add("web2", "qemu+ssh://h"), "has no path"),
    (lambda: registry.add("web2", "qemu+tcp://h:port/system"), "is not a libvirt URI"),
    (lambda: registry.add("Web 2", "qemu:///system"), "is not accepted as a host name"),
    (lambda: registry.add("all", "qemu:///system"), "selects every host"),
    (lambda: registry.add("web2", "qemu:///system", ["bad tag"]), "is not accepted as a tag"),
    (lambda: registry.remove("nope"), "host 'nope' is not in the registry"),
    (lambda: registry.tag("nope", ["x"]), "host 'nope' is not in the registry"),
])
def test_refusals_are_one_sentence_and_leave_the_file_as_it_was(change, sentence):
    registry.add("web1", "qemu+ssh://root@web1/system", ["web"])
    before = user_text()
    with pytest.raises(VirtopsError) as refused:
        change()
    assert sentence in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).endswith(".")
    assert user_text() == before


def test_the_cli_refuses_in_one_sentence_with_exit_1_and_leaves_the_file():
    assert cli("host", "add", "web1", "qemu+ssh://root@web1/system").returncode == 0
    before = user_text()
    for args, sentence in ((["host", "add", "web1", "qemu:///system"], "already registered"),
                           (["host", "add", "x", "qemu+ssh//nohost"], "is not a libvirt URI"),
                           (["host", "remove", "nope"], "is not in the registry"),
                           (["host", "tag", "nope", "t"], "is not in the registry")):
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("error: ") and sentence in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert user_text() == before


def test_system_file_is_read_below_the_users_and_never_written(files):
    system = Path(os.environ["VIRTOPS_SYSTEM_HOSTS"])
    system.parent.mkdir()
    system.write_text("hosts:\n  shared: {uri: 'qemu+ssh://ops@shared/system', tags: [site]}\n"
                      "  both: {uri: 'qemu+ssh://system/system'}\n")
    Path(registry.user_file()).parent.mkdir(parents=True)
    Path(registry.user_file()).write_text("hosts:\n  both: {uri: 'qemu+ssh://mine/system'}\n")
    hosts = {h.name: h for h in registry.registered()}
    assert hosts["shared"].tags == ("site",) and hosts["both"].uri == "qemu+ssh://mine/system"
    before = system.read_bytes()
    with pytest.raises(InvalidInput, match="already registered in"):
        registry.add("shared", "qemu:///system")
    with pytest.raises(InvalidInput, match="change it there"):
        registry.remove("shared")
    assert system.read_bytes() == before


@pytest.mark.parametrize("text, sentence", [
    ("hosts: [a, b]\n", "must be a mapping of host names"),
    ("hosts:\n  a: {uri: 'qemu:///system'}\n  a: {uri: 'qemu:///session'}\n", "'a' is given twice"),
    ("x: &x {uri: 'qemu:///system'}\nhosts:\n  a: *x\n", "aliases"),
    ("hosts:\n  a: {uri: 'nonsense'}\n", "hosts.a: 'nonsense' is not a libvirt URI"),
    ("hosts:\n  a: {uri: 'qemu:///system', colour: red}\n", "must be a mapping with uri"),
    ("hosts:\n  a: {uri: 'qemu:///system'\n", "not valid YAML"),
    ("!!python/object:os.system {}\n", "not valid YAML"),
])
def test_a_broken_file_is_refused_in_one_sentence_and_not_rewritten(text, sentence):
    Path(registry.user_file()).parent.mkdir(parents=True)
    Path(registry.user_file()).write_text(text)
    with pytest.raises(VirtopsError) as refused:
        registry.registered()
    assert sentence in str(refused.value) and str(registry.user_file()) in str(refused.value)
    with pytest.raises(VirtopsError):
        registry.add("b", "qemu:///system")
    assert Path(registry.user_file()).read_text() == text


def test_a_file_over_the_size_limit_is_not_parsed():
    Path(registry.user_file()).parent.mkdir(parents=True)
    Path(registry.user_file()).write_text("hosts:\n" + "#" * registry.MAX_FILE_BYTES + "\n")
    with pytest.raises(VirtopsError, match="larger than 1024 KiB"):
        registry.registered()


def test_two_processes_adding_at_once_both_land():
    """Two processes, each adding 25 hosts as fast as it can: every one of the 50 is in the file."""
    script = ("import sys\nfrom virtops.daemon import registry\n"
              "for i in range(25):\n    registry.add(f'{sys.argv[1]}{i}', f'qemu+ssh://{sys.argv[1]}{i}/system')\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, prefix]) for prefix in ("a", "b")]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    names = {h.name for h in registry.registered()}
    assert names == {f"{p}{i}" for p in "ab" for i in range(25)}


def test_two_cli_host_adds_at_once_both_land():
    workers = [subprocess.Popen([sys.executable, "-m", "virtops", "host", "add", name, f"qemu+ssh://{name}/system"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("one", "two")]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    assert {h.name for h in registry.registered()} == {"one", "two"}


# -- -c NAME ----------------------------------------------------------------------------------
def test_connect_accepts_a_registered_name(tmp_path):
    registry.add("demo", f"test://{tmp_path}/nonexistent.xml")
    registry.add("alab", "lab:alpha")
    assert resolve_uri("demo") == f"test://{tmp_path}/nonexistent.xml"
    assert resolve_uri("alab") == f"qemu+unix:///system?socket={tmp_path}/labs/alpha/run/libvirt-sock"
    assert resolve_uri("qemu:///system") == "qemu:///system"  # a URI is never looked up
    with pytest.raises(NotFound, match="host 'nosuch' is not in the registry"):
        resolve_uri("nosuch")


def test_host_list_shows_registered_hosts_and_why_one_is_unreachable(tmp_path):
    registry.add("demo", "test:///default", ["t"])
    registry.add("gone", f"qemu+unix:///system?socket={tmp_path}/none")
    result = cli("host", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["demo"]["reachable"] is True and rows["demo"]["tags"] == ["t"] and rows["demo"]["cpus"] > 0
    assert rows["demo"]["vms"] == rows["demo"]["vms_running"] == 1  # the test driver's domain
    assert rows["gone"]["reachable"] is False and "No libvirt daemon answers" in rows["gone"]["reason"]


# -- -H selectors -----------------------------------------------------------------------------
def test_selectors():
    from virtops.fleet.select import select

    registry.add("w1", "qemu+ssh://w1/system", ["web"])
    registry.add("w2", "qemu+ssh://w2/system", ["web"])
    registry.add("d1", "qemu+ssh://d1/system", ["db"])
    assert [h.name for h in select("tag:web")] == ["w1", "w2"]
    assert [h.name for h in select("d1,w1,tag:web")] == ["d1", "w1", "w2"]
    assert [h.name for h in select("all")] == ["w1", "w2", "d1"]  # no lab runs under this test's lab root
    assert [(h.name, h.uri) for h in select("lab:x1")] == [("lab:x1", "lab:x1")]
    for selector, sentence in (("tag:none", "no registered host carries the tag 'none'"),
                               ("w1,nosuch", "host 'nosuch' is not in the registry"),
                               ("w1,,w2", "has an empty term"), ("qemu:///system", "is not a selector"),
                               ("lab:Bad_Name", "a lab host is lab:NAME"), ("x" * 5000, "longer than")):
        with pytest.raises(InvalidInput) as refused:
            select(selector)
        assert refused.value.field == "selector" and sentence in str(refused.value)


# -- a daemon that accepts and never answers ----------------------------------------------------
@pytest.fixture
def silent_socket(tmp_path):
    """A unix socket that accepts connections (the kernel's backlog) and never answers a byte."""
    path = tmp_path / "silent-sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    try:
        yield f"qemu+unix:///system?socket={path}"
    finally:
        server.close()


def test_connect_to_a_silent_daemon_is_bounded(silent_socket):
    connection = Connection(silent_socket)
    connection.connect_timeout = 1
    started = time.monotonic()
    with pytest.raises(VirtopsError, match="did not answer within 1 s"):
        connection.conn
    assert time.monotonic() - started < 3


def test_gather_returns_every_other_hosts_answer_when_one_is_silent(silent_socket, tmp_path):
    from virtops.fleet import gather as fleet

    registry.add("demo", "test:///default")
    registry.add("silent", silent_socket)
    registry.add("down", f"qemu+unix:///system?socket={tmp_path}/none")
    started = time.monotonic()
    gathered = fleet.gather(registry.registered(), lambda host: [d.name() for d in host.conn.listAllDomains()])
    assert time.monotonic() - started < fleet.CONNECT_TIMEOUT_S + 3
    assert list(gathered.rows()) == [("demo", "test")]
    reasons = {a.host.name: a.error for a in gathered.failures}
    assert set(reasons) == {"silent", "down"}
    assert "did not answer within" in reasons["silent"] and "No libvirt daemon answers" in reasons["down"]


def test_gather_deadline_bounds_work_that_never_ends(tmp_path):
    from virtops.fleet.gather import gather

    node = tmp_path / "stuck.xml"  # a second test-driver host, told apart by its URI
    node.write_text("<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>1</cores><threads>1</threads>"
                    "<mhz>2000</mhz></cpu><memory>1048576</memory></node>")
    registry.add("demo", "test:///default")
    registry.add("stuck", f"test://{node}")
    started = time.monotonic()
    gathered = gather(registry.registered(), lambda host: time.sleep(3600) if "stuck" in host.uri else [1], deadline=1)
    assert time.monotonic() - started < 2.5
    assert list(gathered.rows()) == [("demo", 1)]
    assert [a.host.name for a in gathered.failures] == ["stuck"]
    assert "did not answer within 1 s" in gathered.failures[0].error


def test_fleet_listing_cli_with_a_silent_host_prints_the_others_and_exits_1(silent_socket):
    registry.add("demo", "test:///default", ["t"])
    registry.add("silent", silent_socket, ["t"])
    started = time.monotonic()
    result = cli("-H", "tag:t", "vm", "list", "--all", "--json")
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert [(row["host"], row["name"]) for row in json.loads(result.stdout)] == [("demo", "test")]
    assert result.stderr.startswith("error: host silent: ") and result.stderr.count("\n") == 1
    plain = cli("-H", "demo,silent", "vm", "list", "--all")
    assert plain.returncode == 1 and plain.stdout.splitlines()[0].split()[:2] == ["Host", "Id"]
    assert plain.stdout.splitlines()[1].split()[:3] == ["demo", "1", "test"]


def test_h_refuses_one_host_commands_and_c_with_it():
    registry.add("demo", "test:///default")
    result = cli("-H", "demo", "vm", "create", "x", "--memory", "1M")
    assert result.returncode == 2 and "`virtops vm create` works on one host" in result.stderr
    result = cli("-H", "demo", "-c", "test:///default", "vm", "list")
    assert result.returncode == 2 and "give one of them" in result.stderr
