"""Refusals in the core's own terms, worded per face (issue 10, point 5): the core names fields and
the terms of a request (`term("format", "qcow2")`, `term("force", True)`, a CLI command as a hint)
and never a CLI flag; the CLI words them as its options, the REST API as body fields, the spec as
its keys. The guard below keeps CLI flags out of the core's sentences; the rest shows one refusal of
each kind on libvirt's test driver through the CLI, the REST API and a spec's plan."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import run_cli
from virtops.base.errors import (CORE_WORDING, CommandLineWording, InvalidInput, NeedsOption, VirtopsError, WayOut,
                                 by_face, command, located, term)
from virtops.host import Host
from virtops.spec import plan as P
from virtops.spec.document import SpecError, loads

SRC = Path(__file__).resolve().parents[2] / "src" / "virtops"
CORE = ["ops", "daemon", "host.py", "spec", "backup", "fleet", "xmlmodels", "base"]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
COMMAND = "`virtops "  # a command to run, which only the command line words as one (base/errors.command)
# Strings of the core that are no sentence for people: an argv of nsenter's, the prefix of a
# negative flag in base/errors.CommandLineWording (the wording of the command line's hints), the
# comment at the head of the host registry's file.
NOT_SENTENCES = {"--net=/proc/", "--no-", "# virtops host registry:"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _descriptions(tree: ast.AST) -> set[int]:
    """Strings inside a Field(description=...) or a .format(dump=...) of one: the spec schema's help."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("description", "dump"):
            found.update(id(sub) for sub in ast.walk(node.value))
    return found


def _command_lines(tree: ast.AST) -> set[int]:
    """Strings inside the command line's side of a by_face(cli, elsewhere): the command line's words."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "by_face" and node.args:
            found.update(id(sub) for sub in ast.walk(node.args[0]))
    return found


def flags_in_core_text(source: str, name: str = "<source>") -> list[str]:
    """`file:line: text` of each string of the module (docstrings and schema help aside) that spells
    a CLI flag or a virtops command to run outside the command line's side of by_face, and of each
    refusal whose field is a flag (InvalidInput("--target", ...), field="-x")."""
    tree = ast.parse(source, name)
    skipped = _docstrings(tree) | _descriptions(tree)
    commands = _command_lines(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            text = node.value
            named = FLAG.search(text) or COMMAND in text and id(node) not in commands
            if named and not any(text.startswith(ok) for ok in NOT_SENTENCES):
                found.append(f"{name}:{node.lineno}: {text!r}")
        if isinstance(node, ast.Call):
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            fields = [node.args[0]] if func == "InvalidInput" and node.args else []
            fields += [k.value for k in node.keywords if k.arg == "field"]
            for field in fields:
                if isinstance(field, ast.Constant) and isinstance(field.value, str) and field.value.startswith("-"):
                    found.append(f"{name}:{field.lineno}: field {field.value!r}")
    return sorted(found)


def test_the_core_writes_no_cli_flag_into_a_sentence_or_a_field():
    modules = [path for part in CORE for path in ((SRC / part).rglob("*.py") if (SRC / part).is_dir() else [SRC / part])]
    assert len(modules) > 40
    found = [hit for path in modules for hit in flags_in_core_text(path.read_text(), str(path.relative_to(SRC)))]
    assert found == [], "the core names CLI flags; name the field, or the term (base/errors.term):\n" + "\n".join(found)


def test_the_guard_finds_a_flag_in_a_sentence_and_a_field():
    source = '''
def check(fmt):
    """A docstring may speak of --format."""
    if fmt != "raw":
        raise InvalidInput("format", f"{fmt!r} is not raw; give --format raw.")
    raise InvalidInput("--format", "is wrong.")
'''
    assert [hit.split(": ", 1)[1] for hit in flags_in_core_text(source)] == [
        "' is not raw; give --format raw.'", "'--format'", "field '--format'"]
    assert flags_in_core_text('raise InvalidInput("format", f"give {term(\'format\', \'raw\')}.")\n') == []
    assert len(flags_in_core_text('raise NotFound("vm: no such VM; `virtops vm list` lists them.")\n')) == 1
    assert flags_in_core_text('raise NotFound(f"vm: no such VM{by_face(\'; `virtops vm list` lists them\')}.")\n') == []


CORE_PACKAGES = ["virtops.ops", "virtops.daemon", "virtops.fleet", "virtops.xmlmodels", "virtops.base"]


def flags_in_model_help(models) -> list[str]:
    """`Model.field: text` of each field description, and `Model: text` of each model docstring (the
    REST schema's description), that names a CLI flag or a virtops command: these texts are every
    face's help (the CLI's --help, the REST schema, the spec's), so they say the field in plain words."""
    found = []
    for model in models:
        own_doc = model.__dict__.get("__doc__") or ""
        if FLAG.search(own_doc) or COMMAND in own_doc:
            found.append(f"{model.__name__}: {own_doc!r}")
        for name, info in model.model_fields.items():
            text = info.description or ""
            if FLAG.search(text) or COMMAND in text:
                found.append(f"{model.__name__}.{name}: {text!r}")
    return found


def _core_models() -> list:
    import importlib
    import inspect
    import pkgutil

    from pydantic import BaseModel

    modules = [importlib.import_module("virtops.host")]
    for package in map(importlib.import_module, CORE_PACKAGES):
        modules += [importlib.import_module(info.name) for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return list({cls: None for module in modules for cls in vars(module).values()
                 if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__ == module.__name__})


def test_the_core_s_field_help_names_no_cli_flag():
    models = _core_models()
    assert {"PoolSpec", "VolumeRequest", "NetworkRequest", "VmRequest", "DiskRequest"} <= {m.__name__ for m in models}
    found = flags_in_model_help(models)
    assert found == [], "a core model's help names a CLI flag or command; say the field in plain words:\n" + "\n".join(found)


def test_the_help_guard_finds_a_flag_in_a_description_and_a_docstring():
    from pydantic import BaseModel, Field

    class Told(BaseModel):
        """Made by `virtops vm create`."""

        start: bool = Field(True, description="Start it (--no-start: only define it).")
        target: str = Field("", description="The disk's name in the guest.")
    assert flags_in_model_help([Told]) == ["Told: 'Made by `virtops vm create`.'",
                                           "Told.start: 'Start it (--no-start: only define it).'"]


# -- the terms and their wordings ------------------------------------------------------------------
def test_a_term_stays_a_term_through_an_f_string():
    err = InvalidInput("backing", f"must be qcow2; give {term('format', 'qcow2')} or {term('start', False)}, "
                                  f"{term('with_volumes', True)} or {term('target')} (port {term('port', 5900)}).")
    assert err.field == "backing"
    assert err.terms == [term("format", "qcow2"), term("start", False), term("with_volumes", True), term("target"),
                         term("port", 5900)]
    # The core's own words (the Python API, logs): keyword arguments as Python takes them.
    assert str(err) == err.message == ("backing: must be qcow2; give format='qcow2' or start=False, with_volumes=True "
                                       "or target (port port=5900).")
    assert err.worded(CommandLineWording()) == ("backing: must be qcow2; give --format qcow2 or --no-start, "
                                                "--with-volumes or --target (port --port 5900).")


def test_a_quoted_value_cannot_forge_a_term():
    forged = str(term("force", True))
    err = InvalidInput("name", f"{forged!r} is not a name.")  # repr escapes the private-use markers
    assert err.terms == [] and "\\ue000" in str(err)


def test_a_command_hint_is_the_command_on_the_command_line_and_its_terms_or_words_elsewhere():
    err = VirtopsError(f"vm: VM x has no VNC display; create it with {command('vm create', term('graphics', 'vnc'))}"
                       f"{command('vm list', term('all', True), wrap='; {} lists them', elsewhere='')}.")
    assert err.worded(CommandLineWording()) == ("vm: VM x has no VNC display; create it with "
                                                "`virtops vm create --graphics vnc`; `virtops vm list --all` lists them.")
    assert str(err) == "vm: VM x has no VNC display; create it with graphics='vnc'."
    assert CORE_WORDING.words(by_face("`virtops pool start`", "start it")) == "start it"


def test_needs_option_names_its_option_as_a_term():
    err = NeedsOption(f"vm: x is running; give {term('force', True)} to stop it.")
    assert err.option == "force" and err.terms == [term("force", True)]
    assert err.worded(CommandLineWording()) == "vm: x is running; give --force to stop it."
    assert [(way.term, way.does) for way in err.ways] == [(term("force", True), "go ahead anyway")]


def test_needs_option_may_name_several_ways_out_in_plain_words():
    """A pool with volumes: the caller chooses; each way is an option's value and what it does."""
    err = NeedsOption(f"pool p holds 1 volume(s); give {term('with_volumes', True)} or {term('keep_data', True)}.",
                      ways=[WayOut("with_volumes", True, "delete the volumes too"),
                            WayOut("keep_data", True, "keep the data, remove only the pool definition")])
    assert err.option == "with_volumes"
    assert [(way.term, way.does) for way in err.ways] == [
        (term("with_volumes", True), "delete the volumes too"), (term("keep_data", True), "keep the data, remove only the pool definition")]
    assert not [way for way in err.ways if FLAG.search(way.does) or "pass " in way.does]


# -- one refusal of each kind, in every face, on the test driver --------------------------------------
NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads><mhz>2000</mhz></cpu>
  <memory>8388608</memory>
  <domain type='test'><name>guest</name><memory>65536</memory><os><type>hvm</type></os></domain>
  <pool type='dir'><name>images</name><target><path>/var/lib/libvirt/images</path></target>
    <volume type='file'><name>base</name><capacity>1048576</capacity><target><format type='raw'/></target></volume>
  </pool>
</node>"""


@pytest.fixture
def node_uri(tmp_path, monkeypatch):
    """A test driver's host with a running VM and a pool with a volume: each process that opens
    it (the CLI's, this one) starts from the same objects."""
    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    return f"test://{node}"


def _cli_error(uri: str, *args: str) -> str:
    result = run_cli(*args, uri=uri)
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def api(node_uri):
    """The REST API on its own connection to the node's host, logged in as a script is."""
    from starlette.testclient import TestClient

    from virtops.web.app import create_app

    host = Host(node_uri)
    with TestClient(create_app(host, "password"), base_url="http://127.0.0.1") as client:
        login = client.post("/login", json={"password": "password"})
        assert login.status_code == 200
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield client


def _spec_refusals(uri: str, text: str) -> list[str]:
    host = Host(uri)
    try:
        with pytest.raises(SpecError) as refused:  # one, or several at once (SpecErrors)
            P.make_plan(host, loads(text, "host.yaml"))
        return str(refused.value).splitlines()
    finally:
        host.close()


def test_an_invalid_value_with_a_term_in_every_face(node_uri, api):
    """InvalidInput("backing", "... give {term('format', 'qcow2')}"), as each face words it."""
    assert _cli_error(node_uri, "vol", "create", "images", "v", "1M", "--backing", "images/base", "--format", "raw") \
        == "error: --backing: a volume with a backing volume must be qcow2; give --format qcow2."
    answer = api.post("/api/pools/images/volumes", json={"name": "v", "capacity": "1M", "format": "raw",
                                                         "backing": "images/base"})
    assert answer.status_code == 422
    assert answer.json() == {"error": 'backing: a volume with a backing volume must be qcow2; give "format": "qcow2".',
                             "field": "backing"}
    # The spec checks a volume's backing itself; a network's device is the core's rule, and its term.
    assert _spec_refusals(node_uri, "networks:\n- name: n\n  mode: isolated\n  dev: eth0\n"
                                    "  subnet: 10.9.0.0/24\n") == [
        "host.yaml:4: networks[0].dev: mode isolated does not forward through a device; use dev only with nat or route."]
    assert _cli_error(node_uri, "net", "create", "n", "--mode", "isolated", "--dev", "eth0", "--subnet", "10.9.0.0/24") \
        == "error: --dev: mode isolated does not forward through a device; use --dev only with nat or route."
    answer = api.post("/api/networks", json={"name": "n", "mode": "isolated", "dev": "eth0", "subnet": "10.9.0.0/24"})
    assert (answer.status_code, answer.json()["field"]) == (422, "dev")


def test_a_refusal_that_needs_an_option_in_every_face(node_uri, api):
    """NeedsOption: the CLI names its flag, the REST API the query parameter and answers it as the
    option the console offers as a button."""
    assert _cli_error(node_uri, "vm", "delete", "guest") == \
        "error: vm: guest is running; shut it down first, or give --force to stop it at once and delete it anyway."
    answer = api.delete("/api/vms/guest")
    assert answer.status_code == 409
    assert answer.json() == {"error": 'vm: guest is running; shut it down first, or give "force": true to stop it at '
                                      'once and delete it anyway.', "field": "force", "option": "force",
                             "ways": [{"option": "force", "value": True, "does": "stop it at once and delete it"}]}
    assert api.get("/api/vms/guest").status_code == 200


def test_a_refusal_of_a_part_of_the_request_in_every_face(node_uri, api):
    """A refusal located in the request (a VM's first disk) begins with the CLI's option and number,
    sits at the REST body's path and at the spec's."""
    assert _cli_error(node_uri, "vm", "create", "v", "--memory", "64M", "--disk", "images/nothing") == \
        "error: --disk #1: pool images has no volume 'nothing'; create it with `virtops vol create images nothing SIZE`."
    answer = api.post("/api/vms", json={"name": "v", "memory": "64M", "disks": [{"volume": "images/nothing"}]})
    assert answer.status_code == 404
    assert answer.json() == {"error": "volume: pool images has no volume 'nothing'; create it first.",
                             "field": "disks[0].volume"}
    # The same disk's bus and target, which do not match: at the disk's place in each face.
    assert _cli_error(node_uri, "vm", "create", "v", "--memory", "64M", "--disk", "images/base,target=vdb,bus=scsi") == \
        "error: --disk #1: 'vdb' is not a scsi disk name; give one such as sdb."
    answer = api.post("/api/vms", json={"name": "v", "memory": "64M",
                                        "disks": [{"volume": "images/base", "target": "vdb", "bus": "scsi"}]})
    assert (answer.status_code, answer.json()["field"]) == (422, "disks[0].target")
    assert _spec_refusals(node_uri, "vms:\n- name: v\n  memory: 64M\n  disks:\n  - volume: images/base\n"
                                    "    target: vdb\n    bus: scsi\n") == [
        "host.yaml:6: vms[0].disks[0].target: 'vdb' is not a scsi disk name; give one such as sdb."]


def test_the_command_line_words_a_term_as_the_commands_own_option(node_uri):
    """pool create's format is --format (its parameter is source_format); a refused field that is an
    option of the command is named as the option, an argument by the core's name."""
    assert _cli_error(node_uri, "pool", "create", "n", "--type", "netfs", "--host", "bad host", "--source-path", "/nfs",
                      "--target", "/srv/n") == \
        "error: --host: 'bad host' is not a host name or address; give one such as 192.168.0.254."
    assert _cli_error(node_uri, "pool", "create", "n", "--type", "netfs", "--target", "/srv/n") == \
        "error: --host: a netfs pool needs --host."
    assert _cli_error(node_uri, "pool", "delete", "nothing") == \
        "error: pool: no storage pool named 'nothing' on this host; `virtops pool list --all` lists them."


def test_located_errors_keep_their_terms():
    with pytest.raises(InvalidInput) as refused, located("disks", 1):
        raise InvalidInput("target", f"is taken; leave {term('target')} out.")
    assert refused.value.location == ("disks", 1) and refused.value.terms == [term("target")]


def test_a_bulk_action_words_each_vms_refusal_as_the_api_does(node_uri, api):
    """The console's bulk delete: the running VM's refusal names the API's field, not Python's force=True."""
    answer = api.post("/api/vms/bulk", json={"action": "delete", "names": ["guest"]})
    assert answer.status_code == 200
    assert answer.json()["results"] == [{
        "name": "guest", "ok": False, "done": None,
        "error": 'vm: guest is running; shut it down first, or give "force": true to stop it at once and delete it anyway.'}]


def test_a_fleet_answer_that_failed_is_worded_by_each_face(node_uri, capsys):
    """One host's refusal among a fleet's answers: the CLI's line and the REST API's failure word its terms."""
    from virtops.cli.output import Failed, fleet_failures
    from virtops.fleet.gather import gather
    from virtops.web.api import worded_failure

    class Registered:  # what gather needs of a registered host
        name, uri = "h1", node_uri

    def refuse(host):
        host.vms.delete("guest")

    gathered = gather([Registered()], refuse)
    (failed,) = gathered.failures
    assert failed.error == ("vm: guest is running; shut it down first, or give force=True to stop it at once and "
                            "delete it anyway.")
    assert worded_failure(failed) == ('vm: guest is running; shut it down first, or give "force": true to stop it at '
                                      'once and delete it anyway.')
    with pytest.raises(Failed):
        fleet_failures(gathered.failures)
    assert capsys.readouterr().err == ("error: host h1: vm: guest is running; shut it down first, or give --force to "
                                       "stop it at once and delete it anyway.\n")


def test_a_stray_marker_is_text():
    broken = "\ue000format\ue001s"  # no end: the text as it is
    assert VirtopsError(f"give {broken} or {term('start', False)}.").terms == [term("start", False)]
    assert VirtopsError("\ue000Bad field\ue001-\ue002 \ue003cli only").message == "\ue000Bad field\ue001-\ue002 \ue003cli only"
