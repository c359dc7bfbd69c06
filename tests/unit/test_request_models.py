"""One request model per concept, in every face (issue 10, point 3): the completeness guard of the
core's request classes, beside test_xml_golden.py's guard of the XML fields.

Each concept's request class lives in the core (ops/); the spec's entry and the REST API's body
are that class or a subclass adding only what that face alone has, and the CLI's command has an
option (or an argument) for each of its fields. The guard fails when a face lacks a field of the
class, declares one of its fields again, or is a model of its own that copies fields over.
A field added to a request class is carried to every face by the class itself; a face that
cannot take it must say so here (FACE_LEAVES_OUT), with the reason.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import click
import pytest
from pydantic import BaseModel


@dataclass(frozen=True)
class Concept:
    core: str                      # module:Class of the request model
    spec: str | None               # module:Class of the spec's entry
    rest: tuple[str, str] | None   # (method, path) of the REST API's route whose body it is
    cli: tuple[str, str] | None    # (module:group, command) of the CLI's command
    # Fields a face takes otherwise, by face: the CLI's arguments, a REST path parameter.
    elsewhere: dict[str, tuple[str, ...]] = field(default_factory=dict)


CONCEPTS = {
    "disk": Concept("virtops.ops.devices:DiskRequest", "virtops.spec.document:DiskEntry",
                    ("POST", "/api/vms/{name}/disks"), ("virtops.cli.vm:vm", "attach-disk"),
                    {"cli": ("volume", "path")}),  # the argument: POOL/VOL, path=PATH or protocol=...
    "nic": Concept("virtops.ops.devices:NicRequest", "virtops.spec.document:NicEntry",
                   ("POST", "/api/vms/{name}/nics"), ("virtops.cli.vm:vm", "attach-nic")),
    "volume": Concept("virtops.ops.volume:VolumeRequest", "virtops.spec.document:VolumeEntry",
                      ("POST", "/api/pools/{name}/volumes"), ("virtops.cli.vol:vol", "create"),
                      {"cli": ("name",)}),
    "pool": Concept("virtops.ops.pool:PoolSpec", "virtops.spec.document:PoolEntry", ("POST", "/api/pools"),
                    ("virtops.cli.pool:pool", "create")),
    "pool permissions": Concept("virtops.ops.pool:PoolPermissions", None, ("POST", "/api/pools/{name}/permissions"),
                                ("virtops.cli.pool:pool", "set")),
    "pool (define-as)": Concept("virtops.ops.pool:PoolSpec", None, None, ("virtops.cli.pool:pool", "define-as")),
    # The CLI adds a network's static hosts one by one (net host add); its several addresses are
    # the spec's and the REST API's to give.
    "network": Concept("virtops.ops.network:NetworkRequest", "virtops.spec.document:NetworkEntry",
                       ("POST", "/api/networks"), ("virtops.cli.net:net", "create"),
                       {"cli": ("name", "hosts", "addresses")}),
    "network edit": Concept("virtops.ops.network:NetworkChanges", None, ("POST", "/api/networks/{name}/edit"),
                            ("virtops.cli.net:net", "edit")),
    "DHCP host": Concept("virtops.ops.network:DhcpHost", "virtops.spec.document:HostEntry",
                         ("POST", "/api/networks/{name}/hosts"), ("virtops.cli.net:host_group", "add")),
    "DHCP host key": Concept("virtops.ops.network:HostKey", None, ("POST", "/api/networks/{name}/hosts/remove"),
                             ("virtops.cli.net:host_group", "remove")),
    "network address": Concept("virtops.ops.network:Address", "virtops.spec.document:AddressEntry", None, None),
    "address host": Concept("virtops.ops.network:AddressHost", "virtops.spec.document:AddressHostEntry", None, None),
    # A VM's definition is the spec's entry; vm create adds what only a creation does. The CLI
    # takes the NICs by what they are plugged into (--network, --bridge, --direct).
    "VM": Concept("virtops.ops.vm:VmRequest", "virtops.spec.document:VmEntry", None, None),
    "VM create": Concept("virtops.ops.vm:CreateRequest", None, ("POST", "/api/vms"), ("virtops.cli.vm:vm", "create"),
                         {"cli": ("nics",)}),
    "VM settings": Concept("virtops.ops.vm:VmChanges", None, ("POST", "/api/vms/{name}/settings"),
                           ("virtops.cli.vm:vm", "set")),
    "kernel boot": Concept("virtops.ops.domain:KernelBoot", "virtops.spec.document:BootEntry", None, None),
    "VM move": Concept("virtops.ops.migrate:MoveOptions", None, ("POST", "/api/vms/{name}/migrate"),
                       ("virtops.cli.vm:vm", "migrate")),
}


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _rest_body(method: str, path: str) -> type[BaseModel]:
    from virtops.web.api import router
    from virtops.web.refusals import body_model

    route = next(r for r in router.routes if r.path == path and method in r.methods)
    return body_model(route)


def _cli_fields(ref: str, command: str) -> set[str]:
    """The fields a command takes: its options' destinations and its arguments' names."""
    group: click.Group = _load(ref)
    return {param.name for param in group.commands[command].params}


def missing_in_face(core: type[BaseModel], face: type[BaseModel] | set[str] | None, taken_elsewhere=()) -> list[str]:
    """What a face lacks of the core's request class, or redeclares: a list of sentences."""
    if face is None:
        return [f"{core.__name__} has no such face"]
    if isinstance(face, set):
        return [f"no option for {name}" for name in core.model_fields if name not in face | set(taken_elsewhere)]
    problems = []
    if not issubclass(face, core):
        problems.append(f"{face.__name__} is no subclass of {core.__name__} (a model of its own copies fields)")
    problems += [f"{face.__name__} lacks {name}" for name in core.model_fields
                 if name not in face.model_fields and name not in taken_elsewhere]
    for klass in face.__mro__[:face.__mro__.index(core)] if core in face.__mro__ else []:
        problems += [f"{klass.__name__} declares {name} again" for name in klass.__dict__.get("__annotations__", {})
                     if name in core.model_fields]
    return problems


@pytest.mark.parametrize("name", sorted(CONCEPTS))
def test_every_face_is_the_core_request_class(name):
    concept = CONCEPTS[name]
    core = _load(concept.core)
    problems = []
    if concept.spec:
        problems += missing_in_face(core, _load(concept.spec), concept.elsewhere.get("spec", ()))
    if concept.rest:
        problems += missing_in_face(core, _rest_body(*concept.rest), concept.elsewhere.get("rest", ()))
    if concept.cli:
        problems += missing_in_face(core, _cli_fields(*concept.cli), concept.elsewhere.get("cli", ()))
    assert not problems, f"{name}: " + "; ".join(problems)


@pytest.mark.parametrize("changes, request_class", [("virtops.ops.network:NetworkChanges", "virtops.ops.network:NetworkRequest"),
                                                     ("virtops.ops.pool:PoolPermissions", "virtops.ops.pool:PoolSpec"),
                                                     ("virtops.ops.vm:VmChanges", "virtops.ops.vm:VmRequest")])
def test_an_edit_takes_only_fields_of_its_request_class(changes, request_class):
    """An edit's model (base/model.changes_model) is its request class's fields, each optional."""
    changes, request_class = _load(changes), _load(request_class)
    for name, info in changes.model_fields.items():
        assert info.description == request_class.model_fields[name].description, name
        assert info.default is None, name


def test_the_guard_sees_a_face_that_lacks_or_copies_a_field():
    from pydantic import Field

    from virtops.ops.volume import VolumeRequest

    class Copied(BaseModel):  # a face's own model, as the REST API's VolumeCreate was
        name: str
        capacity: str | int

    class Redeclared(VolumeRequest):
        backing: str | None = Field(None, description="a description of the face's own")

    assert "Copied is no subclass of VolumeRequest (a model of its own copies fields)" in \
        missing_in_face(VolumeRequest, Copied)
    assert "Copied lacks allocation" in missing_in_face(VolumeRequest, Copied)
    assert missing_in_face(VolumeRequest, Redeclared) == ["Redeclared declares backing again"]
    assert missing_in_face(VolumeRequest, {"capacity", "allocation", "format"}, ("name",)) == ["no option for backing"]
    assert missing_in_face(VolumeRequest, _load("virtops.spec.document:VolumeEntry")) == []


@pytest.mark.parametrize("argv", [["net", "host", "add", "default", "--ip", "192.168.122.9"],  # DhcpHost.mac
                                  ["vm", "create", "v1"]])  # memory: the command's extra= requires it
def test_a_required_field_is_a_usage_error_when_left_out(argv, capsys):
    from virtops.cli.common import run_main
    from virtops.cli.root import cli

    assert run_main(cli, ["-c", "test:///default", *argv]) == 2
    assert "Missing option" in capsys.readouterr().err


def test_a_value_the_model_refuses_reads_alike_in_every_face():
    """A size that is none: the same sentence from the REST API's translation, the spec's and the
    CLI's (cli/common.request_of), each naming the field its own way."""
    from pydantic import ValidationError

    from virtops.base.errors import InvalidInput
    from virtops.cli.common import request_of
    from virtops.ops.vm import CreateRequest
    from virtops.spec.document import SpecError, loads
    from virtops.web.api import VolumeCreate, VmCreate
    from virtops.web.refusals import validation_refusal

    sentence = "'lots' is not a size; give bytes or a number with a unit such as 1000M, 5G, 512MiB or 10GB."
    for body_model, body, name in ((VolumeCreate, {"name": "v", "capacity": "lots"}, "capacity"),
                                   (VmCreate, {"name": "v", "memory": "lots"}, "memory")):
        with pytest.raises(ValidationError) as err:
            body_model.model_validate(body)
        errors = [{**e, "loc": ("body", *e["loc"])} for e in err.value.errors()]
        assert validation_refusal(errors, body, body_model) == (name, f"{name}: {sentence}")
    with pytest.raises(SpecError, match=f"host.yaml:4: pools\\[0\\].volumes\\[0\\].capacity: {sentence}"):
        loads("pools:\n  - name: p\n    target: /var/lib/libvirt/p\n    volumes: [{name: v, capacity: lots}]\n",
              "host.yaml")
    with pytest.raises(InvalidInput, match=f"^memory: {sentence}$"):
        request_of(CreateRequest, name="v", memory="lots")
