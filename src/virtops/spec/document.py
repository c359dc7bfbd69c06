"""The declarative spec: a YAML file describing a host's pools (with their volumes), networks and
VMs (with their disks and NICs), using the same fields as the CLI.

This module only translates: YAML with line numbers <-> the core's request models. Each entry is
the core's class (ops/: VolumeRequest, PoolSpec, NetworkRequest, DhcpHost, Address, VmRequest,
KernelBoot, DiskRequest, NicRequest) or a subclass adding only what a spec alone says (autostart,
active, xml, a pool's volumes), so the spec's JSON Schema is theirs.
Every rule about what is valid lives in the core (pool.py, network.py, volume.py, vm.py); here
their refusals are placed at a file, a line and a field. `plan.py` compares and acts.

Unset fields mean the default, not "don't care": `normalized()` fills each default the way the
core (or libvirt) would, so a value someone set by hand shows up as drift. Exceptions, all values
the host picks: a network's bridge and a NIC's MAC, when left out, match whatever the host chose;
a pool's mode, owner and group, when left out, stay as libvirt has them (unset, or what its build
gave the directory), so a spec never invents root ownership.

Rules that protect new objects (a pool in a system directory, a label that is no SELinux context,
a DHCP host name with dots) apply to changes only: `normalized(kept=...)` takes the object as the
host has it, and the core skips those rules for values unchanged from it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from virtops.base.errors import CommandLineWording, InvalidInput, Refusals, Term, VirtopsError, Wording, command, term
from virtops.base.names import LAB_PREFIX
from virtops.daemon import registry
from virtops.daemon.connection import is_host_name
from virtops.ops.devices import DiskRequest, NicRequest
from virtops.ops.network import Address, AddressHost, DhcpHost, NetworkRequest
from virtops.ops.domain import KernelBoot
from virtops.ops.pool import PoolSpec
from virtops.ops.vm import VmRequest
from virtops.ops.volume import VolumeRequest
from virtops.xmlmodels.values import NETWORK_MODES

XML_DESCRIPTION = ("libvirt's XML of a {kind} whose form the other fields cannot describe (`virsh {dump}`); "
                   "then only name, autostart and active go beside it. Compared after libvirt's own formatting.")
# The fields an entry given as xml: may have besides it.
BESIDE_XML = {"name", "xml", "autostart", "active", "volumes"}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the file's models ---------------------------------------------------------------------------
class VolumeEntry(VolumeRequest):
    """A volume in its pool (`virtops vol create POOL NAME`): the core's VolumeRequest, or libvirt's
    XML of it."""

    xml: str | None = Field(None, description=XML_DESCRIPTION.format(kind="volume", dump="vol-dumpxml"))

    def normalized(self) -> "VolumeEntry":
        if self.xml is not None:
            return self
        return self.model_copy(update={"format": self.default_format()})


class PoolEntry(PoolSpec):
    """A storage pool (`virtops pool create`), started, with its volumes: the core's PoolSpec, or
    libvirt's XML of it, with what only a spec says of it."""

    autostart: bool = True
    active: bool = True
    xml: str | None = Field(None, description=XML_DESCRIPTION.format(kind="pool", dump="pool-dumpxml --inactive"))
    volumes: list[VolumeEntry] = []

    def normalized(self, kept: "PoolEntry | None" = None) -> "PoolEntry":
        """Names resolved, paths normalised; InvalidInput when refused. `kept`: the pool as the host
        has it (the rules that protect new pools skip its unchanged values)."""
        if self.xml is not None:  # libvirt's own form: rawxml compares it, libvirt checks it
            return self.model_copy(update={"volumes": [v.normalized() for v in self.volumes]})
        checked = self.checked(kept=kept if kept and kept.xml is None else None).model_dump()
        return self.model_copy(update={**checked, "volumes": [v.normalized() for v in self.volumes]})


# A network's static hosts and addresses in the spec are the core's own models (ops/network.py).
HostEntry = DhcpHost
AddressHostEntry = AddressHost
AddressEntry = Address


class NetworkEntry(NetworkRequest):
    """A virtual network (`virtops net create`), running unless active is false: the core's
    NetworkRequest, or libvirt's XML of it, with what only a spec says of it."""

    autostart: bool = True
    active: bool = True
    xml: str | None = Field(None, description=XML_DESCRIPTION.format(kind="network", dump="net-dumpxml --inactive"))

    def normalized(self, kept: "NetworkEntry | None" = None) -> "NetworkEntry":
        """Defaults filled in; InvalidInput when refused. `kept`: the network as the host has it."""
        from virtops.ops.network import build_spec

        if self.xml is not None:  # libvirt's own form: rawxml compares it, libvirt checks it
            return self
        spec = build_spec(self.name, **self.build_options(), kept=kept.as_kept() if kept and kept.xml is None else None)
        return network_entry(spec, self.autostart, self.active)


# A VM's boot, disks and NICs in the spec are the core's own request models (one model per
# concept in every face): the spec's schema is theirs.
BootEntry = KernelBoot
DiskEntry = DiskRequest
NicEntry = NicRequest


class VmEntry(VmRequest):
    """A VM (`virtops vm create`) with its disks and NICs: the core's VmRequest, or libvirt's XML
    of it."""

    xml: str | None = Field(None, description=XML_DESCRIPTION.format(kind="VM (a NIC of type user, ethernet, "
                                                                      "vhostuser..., a CD-ROM)", dump="dumpxml --inactive"))

    def normalized(self) -> "VmEntry":
        from virtops.ops.vm import next_target, normalize_mac

        if self.xml is not None:
            return self
        taken = {d.target for d in self.disks if d.target}
        disks = []
        for disk in self.disks:
            target = disk.target or next_target(disk.bus, taken)
            taken.add(target)
            disks.append(disk.normalized().model_copy(update={"target": target}))
        nics = [n.normalized().model_copy(update={"mac": normalize_mac(n.mac) if n.mac else None}) for n in self.nics]
        return self.model_copy(update={"disks": disks, "nics": nics})


class HostSpec(Model):
    """A whole host: `virtops export` writes one, `virtops plan` and `apply` read one."""

    pools: list[PoolEntry] = []
    networks: list[NetworkEntry] = []
    vms: list[VmEntry] = []


class FleetSpec(Model):
    """Several hosts in one file: `hosts: {NAME: {pools, networks, vms}}`, NAME a registered host or
    lab:NAME. `plan` checks every host before `apply` changes any (spec/fleet.py)."""

    hosts: dict[str, HostSpec]


def json_schema() -> dict:
    """One host's spec or a fleet's (hosts: NAME: a host's spec)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(HostSpec | FleetSpec).json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "virtops spec (one host, or hosts: for a fleet)"
    return schema


# -- from the core's models ----------------------------------------------------------------------
def network_entry(spec, autostart: bool, active: bool) -> NetworkEntry:
    """A NetworkEntry from network.NetworkSpec (what build_spec returns or a live network reads as)."""
    dhcp: str | bool | None = None
    if spec.subnet:
        dhcp = f"{spec.dhcp_start}-{spec.dhcp_end}" if spec.has_dhcp else False
    hosts = sorted((h.model_copy(update={"mac": h.mac.lower()}) for h in spec.hosts), key=lambda h: h.mac)
    return NetworkEntry(name=spec.name, mode=spec.mode if spec.mode in NETWORK_MODES
                        else spec.mode, bridge=spec.bridge, dev=spec.dev, subnet=spec.subnet, gateway=spec.gateway,
                        dhcp=dhcp, hosts=hosts, ipv6=spec.ipv6, addresses=spec.addresses, domain=spec.domain,
                        mtu=spec.mtu, ipv6_guests=spec.ipv6_guests or None, nat_ipv6=spec.nat_ipv6 or None,  # off: the default
                        autostart=autostart, active=active)


# -- loading, with every value's line -----------------------------------------------------------
Path_ = tuple  # ('networks', 0, 'dhcp')


class SpecError(VirtopsError):
    """A mistake in the spec file, placed at file:line and field."""


class SpecErrors(SpecError, Refusals):
    """Every mistake a plan found in the spec, one `file:line: field: sentence` per line."""


def path_text(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class LoadedSpec:
    """One host's spec as read, with every value's line. In a fleet spec each host's part is one,
    its paths relative to `prefix` (('hosts', NAME)), so the core's checks place errors as usual."""
    spec: HostSpec
    file: str
    lines: dict[Path_, int] = field(default_factory=dict)
    prefix: Path_ = ()

    def line_of(self, path: Path_) -> int:
        """The line of the deepest part of `path` the file has (a missing field: its object's line)."""
        path = self.prefix + tuple(path)
        for end in range(len(path), -1, -1):
            if tuple(path[:end]) in self.lines:
                return self.lines[tuple(path[:end])]
        return 1

    def error(self, path: Path_, message: str) -> SpecError:
        full = self.prefix + tuple(path)
        where = f"{path_text(full)}: " if full else ""
        return SpecError(f"{self.file}:{self.line_of(path)}: {where}{message}")

    def refusal(self, path: Path_, err: VirtopsError) -> SpecError:
        """A core refusal placed in the file: at its field (source_path) under `path` and the part of
        the request it is about, its terms worded as the file's keys (SpecWording)."""
        path = path + tuple(err.location)
        if err.field and path[-1:] != (err.field,):
            path = path + (err.field,)
        return self.error(path, err.worded(SPEC_WORDING, with_field=False))


class SpecWording(Wording):
    """The core's terms as a spec's keys and values (format: qcow2, start: false); its hints to
    run a command are the command line's, which runs plan and apply."""

    def term(self, item: Term) -> str:
        if item.value is None:
            return item.field
        value = str(item.value).lower() if isinstance(item.value, bool) else item.value
        return f"{item.field}: {value}"

    def commands(self) -> Wording:
        return CommandLineWording()


SPEC_WORDING = SpecWording()


# Parsing is bounded, so a hostile or broken file is refused in a moment, not after eating the
# machine: a real host's spec is a few kilobytes, a few hundred values per dozen VMs.
MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_SPEC_TEXT = "2 MiB"
MAX_DEPTH = 20  # the spec itself nests 6 deep (vms[0].disks[0].volume)
MAX_NODES = 50_000  # values, keys and items, aliases counted each time they are used


def load(file: str | Path) -> LoadedSpec | LoadedFleet:
    """Read and validate a spec file; SpecError at file:line: field for the first mistake."""
    name = str(file)
    try:
        with open(file, "rb") as spec_file:
            data = spec_file.read(MAX_SPEC_BYTES + 1)
            size = os.fstat(spec_file.fileno()).st_size
    except OSError as err:
        raise InvalidInput("file", f"{name}: {(err.strerror or str(err)).lower()}; give an existing spec file.") from None
    if len(data) > MAX_SPEC_BYTES:
        _refuse_size(name, max(size, len(data)))
    return loads(data, name)


def _refuse_size(name: str, size: int) -> None:
    raise SpecError(f"{name}: the file is {size} bytes, more than a spec may be ({MAX_SPEC_TEXT}); "
                    "split it or remove what the host does not need.")


def _text_of(data: str | bytes, name: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise SpecError(f"{name}:{line}: the file is not UTF-8 text (byte {data[err.start]:#04x} at offset "
                        f"{err.start}); save it as UTF-8.") from None


@dataclass
class LoadedFleet:
    """A fleet spec as read: each host's part by the name the file gives it."""
    file: str
    hosts: dict[str, LoadedSpec]


def loads(text: str | bytes, name: str = "<spec>") -> LoadedSpec | LoadedFleet:
    """Validate a spec given as text (or bytes, read as UTF-8); SpecError for the first mistake.
    A file whose top level is `hosts:` is a fleet spec."""
    if len(text) > MAX_SPEC_BYTES:
        _refuse_size(name, len(text.encode() if isinstance(text, str) else text))
    text = _text_of(text, name)
    loaded = LoadedSpec(spec=HostSpec(), file=name)
    node = _compose(text, name)
    data = _Reader(loaded).value(node, ()) if node is not None else {}
    if isinstance(data, dict) and "hosts" in data:
        return _fleet_of(data, loaded)
    if not isinstance(data, dict):
        raise loaded.error((), "the file must be a mapping with pools, networks and vms (or hosts: for a fleet).")
    return _validated(data, loaded)


def _validated(data: dict, loaded: LoadedSpec) -> LoadedSpec:
    try:
        loaded.spec = HostSpec.model_validate(data)
    except ValidationError as err:
        raise _first_error(err, data, loaded) from None
    check(loaded)
    return loaded


FLEET_KEYS = "host names (registered ones, or lab:NAME) to their pools, networks and vms"


def _fleet_of(data: dict, loaded: LoadedSpec) -> LoadedFleet:
    other = next((key for key in data if key != "hosts"), None)
    if other is not None:
        raise loaded.error((other,), "is not a field of a fleet spec, which holds only hosts:; "
                                     "put pools, networks and vms under each host.")
    hosts = data["hosts"]
    if not isinstance(hosts, dict) or not hosts:
        raise loaded.error(("hosts",), f"must map {FLEET_KEYS}.")
    fleet = LoadedFleet(loaded.file, {})
    for host, part in hosts.items():
        if not isinstance(host, str) or not (is_host_name(host) or host.startswith(LAB_PREFIX)):
            raise loaded.error(("hosts", host), f"{host!r} is not a host name; the keys of hosts: map {FLEET_KEYS}.")
        if host in registry.RESERVED_NAMES:
            raise loaded.error(("hosts", host), f"{host!r} selects every host; name each host instead.")
        host_spec = LoadedSpec(spec=HostSpec(), file=loaded.file, lines=loaded.lines, prefix=("hosts", host))
        if part is not None and not isinstance(part, dict):
            raise host_spec.error((), "must be a mapping with pools, networks and vms.")
        fleet.hosts[host] = _validated(part or {}, host_spec)
    return fleet


def _compose(text: str, name: str) -> yaml.Node | None:
    loader = None
    try:
        loader = _BoundedLoader(text, name)  # refuses characters YAML does not allow
        return loader.get_single_node()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(err, "problem", None) or getattr(err, "reason", None) or err
        raise SpecError(f"{name}:{line}: not valid YAML: {problem}.") from None
    finally:
        if loader is not None:
            loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer with the limits checked as each node is composed (its recursion
    would otherwise meet Python's limit, and a flat list of a million items takes minutes)."""

    def __init__(self, text: str, name: str):
        super().__init__(text)
        self.spec_name, self.depth, self.nodes = name, 0, 0

    def compose_node(self, parent, index):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _too_many(self.spec_name, self.peek_event().start_mark.line + 1)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.spec_name, self.peek_event().start_mark.line + 1, self.depth)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _too_many(name: str, line: int) -> SpecError:
    return SpecError(f"{name}:{line}: the spec has more than {MAX_NODES} values (keys, items and each use of an "
                     "alias count), more than a spec may have; this looks like an alias bomb or a file that is "
                     "no host spec.")


def _too_deep(name: str, line: int, depth: int) -> SpecError:
    return SpecError(f"{name}:{line}: the spec nests {depth} levels deep here, deeper than the "
                     f"{MAX_DEPTH} levels a spec may have (its own fields nest 6 deep).")


class _Reader:
    """YAML nodes to Python values, with every value's line. Aliases are expanded here, so the
    node limit is counted again: a few nodes that refer to each other can expand to billions."""

    def __init__(self, loaded: LoadedSpec):
        self.loaded, self.nodes = loaded, 0

    def value(self, node: yaml.Node, path: Path_) -> Any:
        loaded = self.loaded
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise _too_many(loaded.file, line)
        if len(path) >= MAX_DEPTH:  # a recursive alias nests forever
            raise _too_deep(loaded.file, line, len(path) + 1)
        loaded.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = _scalar(key_node, loaded)
                if key in result:
                    loaded.lines[path + (key,)] = key_node.start_mark.line + 1
                    raise loaded.error(path + (key,), "is given twice.")
                result[key] = self.value(value_node, path + (key,))
                loaded.lines[path + (key,)] = key_node.start_mark.line + 1  # the key's line, not its value's
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, path + (i,)) for i, item in enumerate(node.value)]
        return _scalar(node, loaded)


_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node, loaded: LoadedSpec) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return f"<a {node.id} used as a key>"  # pydantic refuses it with its line
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in node.value:
        return node.value  # YAML 1.1 reads 52:54:00:00:00:01 and 10:30 as base-60 numbers: keep the text
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError, IndexError) as err:  # 2001-13-45: a date pattern; "_": an int one
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"{loaded.file}:{node.start_mark.line + 1}: {node.value[:40]!r} cannot be read "
                        f"({problem}); quote it to give it as text.") from None


def _first_error(err: ValidationError, data: dict, loaded: LoadedSpec) -> SpecError:
    first = err.errors()[0]
    path = _data_path(first["loc"], data)
    kind = first["type"]
    if kind == "extra_forbidden":
        return loaded.error(path, f"is not a field here; {_known_fields(path[:-1], loaded.spec, data)}.")
    if kind == "missing":
        return loaded.error(path, "is required.")
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    got = _value_at(data, path)
    if got is not None and kind != "value_error":
        message = f"{got!r}: {message[0].lower()}{message[1:]}"
    return loaded.error(path, message.rstrip(".") + ".")


def _data_path(loc: tuple, data: Any) -> Path_:
    """pydantic's location without its union/validator tags: only the keys and indexes of the data."""
    path: list = []
    current = data
    for part in loc:
        if isinstance(current, list) and isinstance(part, int) and part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and part.isidentifier() and part not in (
                "str", "int", "bool", "float", "none", "list", "dict"):
            path.append(part)  # a missing field
            current = None
    return tuple(path)


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data if not isinstance(data, (dict, list)) else None


MODELS_AT = {(): HostSpec, ("pools",): PoolEntry, ("pools", "volumes"): VolumeEntry, ("networks",): NetworkEntry,
             ("networks", "hosts"): HostEntry, ("networks", "addresses"): AddressEntry,
             ("networks", "addresses", "hosts"): AddressHostEntry, ("vms",): VmEntry, ("vms", "boot"): BootEntry,
             ("vms", "disks"): DiskEntry, ("vms", "nics"): NicEntry}


def _known_fields(parent: Path_, _spec: HostSpec, _data: dict) -> str:
    shape = tuple(p for p in parent if isinstance(p, str))
    model = MODELS_AT.get(shape)
    if model is None:
        return f"see {command('export', term('schema', True))}"
    return "known fields: " + ", ".join(model.model_fields)


# -- checks that need no host --------------------------------------------------------------------
def check(loaded: LoadedSpec) -> None:
    """Every rule the core can check without a host, placed at its line; names unique per kind."""
    spec = loaded.spec
    _unique(loaded, ("pools",), [p.name for p in spec.pools])
    _unique(loaded, ("networks",), [n.name for n in spec.networks])
    _unique(loaded, ("vms",), [v.name for v in spec.vms])
    for i, pool in enumerate(spec.pools):
        _check_pool(loaded, i, pool)
    for i, net in enumerate(spec.networks):
        _check_network(loaded, i, net)
    for i, vm in enumerate(spec.vms):
        _check_vm(loaded, i, vm)


def _unique(loaded: LoadedSpec, path: Path_, names: list[str | None], key: str = "name") -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name is None:
            continue
        if name in seen:
            raise loaded.error(path + (i, key), f"{name!r} is given twice; each must be unique.")
        seen.add(name)


def _check_pool(loaded: LoadedSpec, i: int, pool: PoolEntry) -> None:
    from virtops.ops.volume import check_own_values

    path = ("pools", i)
    if pool.xml is not None:
        _check_xml(loaded, path, "pool", pool)
    try:
        pool.normalized(kept=pool)  # without the host: its own values count as kept until the plan sees it
    except InvalidInput as err:
        raise loaded.refusal(path, err) from None
    _unique(loaded, path + ("volumes",), [v.name for v in pool.volumes])
    for j, vol in enumerate(pool.volumes):
        vpath = path + ("volumes", j)
        if vol.xml is not None:
            _check_xml(loaded, vpath, "volume", vol)
            continue
        try:  # a backing path counts as kept here: whether the host has it is the plan's to see
            check_own_values(vol.name, vol.capacity, vol.allocation, vol.format, vol.backing, kept_backing=vol.backing)
        except InvalidInput as err:
            raise loaded.refusal(vpath, err) from None


def _check_network(loaded: LoadedSpec, i: int, net: NetworkEntry) -> None:
    import ipaddress

    from virtops.ops.network import build_spec, check_dhcp_host

    path = ("networks", i)
    if net.xml is not None:
        _check_xml(loaded, path, "network", net)
        return
    if net.addresses:  # every rule of them is the core's (network.check_addresses)
        try:
            build_spec(net.name, **net.build_options(), kept=net.as_kept())
        except InvalidInput as err:
            raise loaded.refusal(path, err) from None
        return
    if net.hosts and not net.subnet:
        raise loaded.error(path + ("hosts",), f"a {net.mode} network without a subnet hands out no fixed addresses.")
    kept = net.as_kept()  # without the host: its own values count as kept until the plan sees it
    try:
        spec = build_spec(net.name, **net.build_options(with_hosts=False), kept=kept)
    except InvalidInput as err:
        raise loaded.refusal(path, err) from None
    hosts = net.hosts
    for j, host in enumerate(hosts):
        try:
            check_dhcp_host(host, ipaddress.ip_network(spec.subnet), ipaddress.ip_address(spec.gateway), hosts[:j + 1],
                            kept=kept)
        except InvalidInput as err:
            field_name = "name" if err.field == "hostname" else err.field
            raise loaded.error(path + ("hosts", j, field_name), err.worded(SPEC_WORDING, with_field=False)) from None


def _check_xml(loaded: LoadedSpec, path: Path_, kind: str, entry: Model) -> None:
    """An entry given as libvirt's XML: of its kind, valid, of its name, and nothing beside it that
    the XML would contradict."""
    from virtops.spec import rawxml

    beside = sorted(entry.model_fields_set - BESIDE_XML)
    if beside:
        raise loaded.error(path + (beside[0],), "belongs in the XML of an entry given as xml:; beside xml: go only "
                                                "name, autostart and active (and a pool's volumes).")
    try:
        rawxml.parsed(kind, entry.xml, entry.name)
    except InvalidInput as err:
        raise loaded.refusal(path, err) from None


def _check_vm(loaded: LoadedSpec, i: int, vm: VmEntry) -> None:
    from virtops.daemon.lookups import split_volume_ref
    from virtops.ops.vm import NAME_PATTERN, check_boot, normalize_mac

    path = ("vms", i)
    if vm.xml is not None:
        _check_xml(loaded, path, "domain", vm)
        return
    if vm.memory is None:
        raise loaded.error(path + ("memory",), "is required.")
    if not NAME_PATTERN.match(vm.name):
        raise loaded.error(path + ("name",), f"{vm.name!r} is not accepted; use up to 64 letters, digits, '_', '.', "
                                             "'+' or '-', starting with a letter or digit.")
    if vm.boot is not None:
        try:
            check_boot(vm.boot)
        except InvalidInput as err:
            raise loaded.error(path + ("boot",), err.worded(SPEC_WORDING, with_field=False)) from None
    for j, disk in enumerate(vm.disks):
        try:
            disk.check_source()
            if disk.volume:
                split_volume_ref(disk.volume, "volume")
        except InvalidInput as err:
            raise loaded.refusal(path + ("disks", j), err) from None
        if disk.target and not re.fullmatch(r"(vd|sd|hd)[a-z]{1,2}", disk.target):
            raise loaded.error(path + ("disks", j, "target"), f"{disk.target!r} is not a disk name such as vdb.")
    for j, nic in enumerate(vm.nics):
        try:
            nic.check_source()
            if nic.mac:
                normalize_mac(nic.mac)
        except InvalidInput as err:
            raise loaded.refusal(path + ("nics", j), err) from None
        # The model is the core's to check, for a NIC the plan adds: one the host has already (an
        # old emulated card another tool chose) is no change, and never makes the plan refuse.
    normalized = vm.normalized()
    _unique(loaded, path + ("disks",), [d.target for d in normalized.disks], "target")
    _unique(loaded, path + ("nics",), [n.mac for n in normalized.nics], "mac")


# -- writing -------------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    """Text of several lines (an xml: entry) as a literal block, as the XML reads in a file."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _text)


def to_yaml(spec: HostSpec | FleetSpec) -> str:
    data = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
