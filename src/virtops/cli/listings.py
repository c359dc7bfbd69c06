"""The listing and info commands (`net list`, `pool info`, `vm list`, `host info`, ...), declared once
without click: their arguments, flags, help and bodies, on one host and under -H on a fleet.

Two parsers read these declarations. cli/quick.py runs a well-formed listing without importing
click (click alone costs a listing more time than virsh takes for all of it); cli/common.py builds
the click commands from them, which serve everything else: --help, usage errors, shell completion.
The bodies read plain rows (ops/rows.py, ops/vmrows.py, daemon/facts.py): no pydantic either."""
from __future__ import annotations

from virtops.cli.output import Context, emit_fields, emit_fleet_rows, emit_json, emit_table, warn_unreadable

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Callable


# Plain classes: a dataclass (with inspect) or a NamedTuple costs a listing's start-up 5 ms or
# 1 ms; these are only read.
class Option:
    __slots__ = ("names", "dest", "help", "metavar")

    def __init__(self, names: tuple[str, ...], dest: str, help: str, metavar: str | None = None):
        self.names = names  # as typed: ("--all", "-a")
        self.dest = dest  # the body's parameter
        self.help = help
        self.metavar = metavar  # an option with a value (-c URI); without one, a flag


class Arg:
    __slots__ = ("name", "complete", "metavar")

    def __init__(self, name: str, complete: str | None = None, metavar: str | None = None):
        self.name = name  # the body's parameter
        self.complete = complete  # the kind of object shell completion offers (common.complete)
        self.metavar = metavar


class Listing:
    __slots__ = ("group", "name", "run", "args", "flags", "fleet")

    def __init__(self, group: str, name: str, run: Callable[..., None], args: tuple[Arg, ...] = (),
                 flags: tuple[Option, ...] = (), fleet: Callable[..., None] | None = None):
        self.group, self.name = group, name
        self.run = run  # run(ctx, **params) on one host; its docstring is the help
        self.args, self.flags = args, flags
        self.fleet = fleet  # the same command under -H, if it has one


JSON = Option(("--json",), "as_json", "Print JSON.")
# The root's options, before the command (cli/root.py); a fleet selector turns a listing into its fleet version.
GLOBAL_OPTIONS = (
    Option(("-c", "--connect"), "uri", "libvirt URI, or lab:NAME (default: $LIBVIRT_DEFAULT_URI, then qemu:///system).",
           metavar="URI"),
    Option(("-H", "--hosts"), "hosts", "Ask a fleet: all, NAME[,NAME...], tag:TAG or lab:NAME (listings, host info, host evacuate, "
           "vm start/shutdown/destroy, plan/apply/export).", metavar="SELECTOR"),
    Option(("--debug",), "debug", "Show tracebacks."),
)


def _size(value: int | None) -> str:
    from virtops.base.units import format_size

    return format_size(value)


# -- networks -------------------------------------------------------------------------------------
NET_COLUMNS = [("name", "Name"), ("state", "State"), ("autostart", "Autostart"), ("persistent", "Persistent"),
               ("bridge", "Bridge"), ("mode", "Mode"), ("subnet", "Subnet"), ("dhcp_range", "DHCP range"),
               ("leases", "Leases")]


def net_list(ctx: Context, include_inactive: bool, as_json: bool) -> None:
    """Networks with state, autostart, persistence, bridge, mode, subnet, DHCP range, leases in use."""
    from virtops.ops import rows

    found = rows.networks(ctx.host(), include_inactive)
    warn_unreadable("network", found)
    if as_json:
        emit_json(found)
        return
    emit_table([{**row, "state": "active" if row["active"] else "inactive"} for row in found], NET_COLUMNS)


def fleet_net_list(ctx: Context, include_inactive: bool, as_json: bool) -> None:
    """Networks of every selected host, with the host first."""
    from virtops.fleet import listings

    gathered = listings.networks(ctx.fleet(), include_inactive)
    for host, row in gathered.rows():
        warn_unreadable("network", [row], where=f"host {host}: ")
    rows = [{"host": host, **i, **({} if as_json else {"state": "active" if i["active"] else "inactive"})}
            for host, i in gathered.rows()]
    emit_fleet_rows(rows, NET_COLUMNS, as_json, gathered.failures)


def net_info(ctx: Context, name: str, as_json: bool) -> None:
    """Everything about one network."""
    from virtops.ops import rows
    from virtops.xmlmodels.values import MODES_WITH_DEV

    i = rows.network_info(ctx.host(), name)
    if as_json:
        emit_json(i)
        return
    forward_dev = i["dev"] or ("any" if i["mode"] in MODES_WITH_DEV else None)
    emit_fields([("Name", i["name"]), ("UUID", i["uuid"]), ("Active", i["active"]), ("Persistent", i["persistent"]),
                 ("Autostart", i["autostart"]), ("Mode", i["mode"]), ("Forward device", forward_dev),
                 ("Bridge", i["bridge"]), ("Subnet", i["subnet"]), ("Gateway", i["gateway"]),
                 ("DHCP range", i["dhcp_range"]),
                 ("Static hosts", ", ".join(f"{h['mac']}={h['ip']}" for h in i["hosts"]) or None), ("IPv6", i["ipv6"]),
                 ("IPv6 between guests", i["ipv6_guests"]),
                 *([("NAT for IPv6", i["nat_ipv6"])] if i["mode"] == "nat" else []),
                 ("DNS domain", i["domain"]), ("MTU", i["mtu"]), ("Leases in use", i["leases"]),
                 *_address_fields(i["addresses"])])


def _address_fields(addresses: list[dict]) -> list[tuple[str, str]]:
    """Every <ip> of the network, each with its DHCP ranges and static hosts."""
    fields = []
    for n, ip in enumerate(addresses, 1):
        fields.append((f"Address {n}", f"{ip['address']} ({ip['family']})"))
        if ip["dhcp_ranges"]:
            fields.append(("  DHCP ranges", ", ".join(ip["dhcp_ranges"])))
        for host in ip["hosts"]:
            who = " ".join(host[key] for key in ("mac", "id", "name") if key in host)
            fields.append(("  Static host", f"{who} = {host.get('ip', '-')}"))
    return fields


# -- pools ----------------------------------------------------------------------------------------
POOL_COLUMNS = [("name", "Name"), ("type", "Type"), ("state", "State"), ("autostart", "Autostart"),
                ("persistent", "Persistent"), ("capacity", "Capacity"), ("allocation", "Allocation"),
                ("available", "Available"), ("target", "Target")]


def pool_sizes(info: dict) -> dict:
    """A pool's row (ops/rows.py, or its model dumped) with sizes as people read them."""
    return {**info, **{key: _size(info[key]) if info[key] is not None else None
                       for key in ("capacity", "allocation", "available")}}


def pool_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """Pools with state, autostart, persistence, sizes and target."""
    from virtops.ops import rows

    found = rows.pools(ctx.host(), include_inactive=show_all)
    warn_unreadable("pool", found)
    if as_json:
        emit_json(found)
        return
    emit_table([pool_sizes(row) for row in found], POOL_COLUMNS)


def fleet_pool_list(ctx: Context, show_all: bool, as_json: bool) -> None:
    """Pools of every selected host, with the host first."""
    from virtops.fleet import listings

    gathered = listings.pools(ctx.fleet(), show_all)
    rows = [{"host": host, **(i if as_json else pool_sizes(i))} for host, i in gathered.rows()]
    emit_fleet_rows(rows, POOL_COLUMNS, as_json, gathered.failures)


def pool_info(ctx: Context, name: str, as_json: bool) -> None:
    """Everything about one pool."""
    from virtops.ops import rows

    info = rows.pool_info(ctx.host(), name)
    if as_json:
        emit_json(info)
        return
    row = pool_sizes(info)
    pairs = [("Name", info["name"]), ("UUID", info["uuid"]), ("Type", info["type"]), ("State", info["state"]),
             ("Persistent", info["persistent"]), ("Autostart", info["autostart"]), ("Capacity", row["capacity"]),
             ("Allocation", row["allocation"]), ("Available", row["available"]), ("Target", info["target"]),
             ("Volumes", info["volumes"])]
    if info["source_name"]:
        pairs.append(("Volume group", info["source_name"]))
    if info["source_host"] or info["source_device"] or info["source_format"]:
        source = f"{info['source_host']}:{info['source_path']}" if info["source_host"] else info["source_device"]
        pairs += [("Source", source), ("Format", info["source_format"])]
    if info["mode"] or info["owner"] is not None:
        pairs += [("Mode", info["mode"]), ("Owner", info["owner"]), ("Group", info["group"])]
    emit_fields(pairs)


# -- volumes --------------------------------------------------------------------------------------
VOL_COLUMNS = [("name", "Name"), ("format", "Format"), ("capacity", "Capacity"), ("allocation", "Allocation"),
               ("used_by", "Used by"), ("path", "Path")]


def volume_cells(info: dict) -> dict:
    """A volume's row (ops/rows.py, or its model dumped) as people read it."""
    used = ", ".join(f"{vm} (running)" if vm in info["running_users"] else vm for vm in info["used_by"]) or "-"
    return {**info, "capacity": _size(info["capacity"]), "allocation": _size(info["allocation"]), "used_by": used}


def vol_list(ctx: Context, pool: str, as_json: bool) -> None:
    """Volumes of a pool with format, sizes, path and the VMs that use them."""
    from virtops.ops import rows

    found = rows.volumes(ctx.host(), pool)
    warn_unreadable("volume", found)
    if as_json:
        emit_json(found)
        return
    emit_table([volume_cells(row) for row in found], VOL_COLUMNS)


def fleet_vol_list(ctx: Context, pool: str, as_json: bool) -> None:
    """Volumes of the pool POOL on every selected host, with the host first."""
    from virtops.fleet import listings

    gathered = listings.volumes(ctx.fleet(), pool)
    rows = [{"host": host, **(i if as_json else volume_cells(i))} for host, i in gathered.rows()]
    emit_fleet_rows(rows, VOL_COLUMNS, as_json, gathered.failures)


def vol_info(ctx: Context, volume: str, as_json: bool) -> None:
    """Everything about one volume."""
    from virtops.ops import rows

    info = rows.volume_info(ctx.host(), volume)
    if as_json:
        emit_json(info)
        return
    row = volume_cells(info)
    emit_fields([("Name", info["name"]), ("Pool", info["pool"]), ("Type", info["type"]), ("Format", info["format"]),
                 ("Capacity", f"{row['capacity']} ({info['capacity']} bytes)"),
                 ("Allocation", f"{row['allocation']} ({info['allocation']} bytes)"),
                 ("Path", info["path"]), ("Backing", info["backing"]), ("Used by", row["used_by"])])


# -- VMs ------------------------------------------------------------------------------------------
def vm_cells(vm: dict, long: bool) -> dict:
    """A VM's row (ops/vmrows.py) as `vm list` shows it, brief or long."""
    cells = {"id": vm["id"], "name": vm["name"], "state": vm["state"], "vcpus": vm["vcpus"],
             "memory": _size(vm["memory_bytes"])}
    if long:
        return {**cells, "disks": " ".join(f"{d['target']}={d['source']}" for d in vm["disks"]) or None,
                "nics": ", ".join(nic_text(n) for n in vm["nics"]) or None}
    return {**cells, "disks": " ".join(vm["disks"]) or None, "ips": " ".join(vm["ips"]) or None}


def nic_text(nic: dict) -> str:
    """MAC, what the NIC is plugged into (a network by its name; anything else as TYPE:SOURCE,
    with a direct NIC's mode) and its IP."""
    return f"{nic['mac'] or '-'} {nic_source_text(nic)}" + (f" {nic['ip']}" if nic["ip"] else "")


def nic_source_text(nic: dict) -> str:
    if nic["type"] == "network":
        return nic["network"] or "-"
    text = f"{nic['type']}:{nic['source']}" if nic["source"] else nic["type"]
    return text + (f" ({nic['source_mode']})" if nic.get("source_mode") else "")


def vm_columns(long: bool) -> list[tuple[str, str]]:
    return [("id", "Id"), ("name", "Name"), ("state", "State"), ("vcpus", "vCPUs"), ("memory", "Memory"),
            ("disks", "Disks"), ("nics", "NICs (MAC network IP)") if long else ("ips", "IP")]


def vm_list(ctx: Context, show_all: bool, long: bool, as_json: bool) -> None:
    """VMs with state, vCPUs, memory, disks and IPs; --long adds disk sources and NICs."""
    from virtops.ops import vmrows

    ctx.event_loop = False  # one read-only pass of many calls: keepalive's wake-ups would only slow it
    host = ctx.host()
    vms = vmrows.detailed(host, show_all) if long else vmrows.summaries(host, show_all)
    warn_unreadable("VM", vms)
    if as_json:
        emit_json(vms)
        return
    emit_table([vm_cells(v, long) for v in vms], vm_columns(long))


def fleet_vm_list(ctx: Context, show_all: bool, long: bool, as_json: bool) -> None:
    """VMs of every selected host, with the host first."""
    from virtops.fleet import listings

    gathered = listings.vms(ctx.fleet(), show_all, long)
    if as_json:
        emit_fleet_rows([{"host": host, **v} for host, v in gathered.rows()], [], True, gathered.failures)
        return
    rows = [{"host": host, **vm_cells(v, long)} for host, v in gathered.rows()]
    emit_fleet_rows(rows, vm_columns(long), False, gathered.failures)


def vm_info(ctx: Context, name: str, as_json: bool) -> None:
    """State, resources, disks and NICs of one VM."""
    from virtops.ops import vmrows

    info = vmrows.vm_info(ctx.host(), name)
    if as_json:
        emit_json(info)
        return
    emit_fields([("Name", info["name"]), ("UUID", info["uuid"]), ("State", info["state"]),
                 ("Type", info["virt_type"]), ("Persistent", info["persistent"]), ("Autostart", info["autostart"]),
                 ("vCPUs", info["vcpus"]), ("Memory", _size(info["memory_bytes"])),
                 ("Disks", ", ".join(f"{d['target']}={d['source']}" for d in info["disks"]) or None),
                 ("NICs", ", ".join(nic_text(n) for n in info["nics"]) or None)])


# -- the host -------------------------------------------------------------------------------------
def cpu_window(sample_cpu: bool) -> float | None:
    """host info's CPU window: --cpu samples for facts.CPU_SAMPLE_S, as virsh nodecpustats --percent does."""
    from virtops.daemon.facts import CPU_SAMPLE_S

    return CPU_SAMPLE_S if sample_cpu else None


def cpu_use(info: dict) -> str:
    """What host info's CPU figure means, or how to get it."""
    if info["cpu_window_s"] is None:
        return "not sampled (--cpu samples it over 1 s)"
    if info["cpu_percent"] is None:
        return "- (the host gives no CPU times)"
    return f"{info['cpu_percent']:.1f}% of {info['cpus']} CPUs over {info['cpu_window_s']:.1f} s"


def host_info(ctx: Context, sample_cpu: bool, as_json: bool) -> None:
    """Hypervisor, versions, CPUs, memory and its use, object counts, KVM or TCG; --cpu adds CPU use."""
    from virtops.daemon.facts import info_row

    info = info_row(ctx.host(), cpu_window(sample_cpu))
    if as_json:
        emit_json(info)
        return
    emit_fields([
        ("URI", info["uri"]), ("Hostname", info["hostname"]), ("Hypervisor", info["hypervisor"]),
        ("libvirt", info["libvirt_version"]), ("QEMU", info["hypervisor_version"]),
        ("CPU model", info["cpu_model"]), ("CPUs", info["cpus"]),
        ("Memory", _size(info["memory_bytes"])), ("Free memory", _size(info["free_memory_bytes"])),
        ("Memory used", f"{_size(info['memory_used_bytes'])} (without buffers and cache)"),
        ("CPU use", cpu_use(info)),
        ("Storage pools", info["pools"]), ("Networks", info["networks"]),
        ("Domains", f"{info['domains']} ({info['running_domains']} running)"),
        ("Guest type", f"{info['virt_type']} ({info['virt_type_source']})" if info["virt_type"]
         else f"- ({info['virt_type_source']}: run `virtops host check`)"),
    ])


HOST_COLUMNS = [("uri", "URI"), ("hostname", "Hostname"), ("libvirt", "libvirt"), ("qemu", "QEMU"), ("cpus", "CPUs"),
                ("cpu", "CPU use"), ("memory", "Memory used/total"), ("pools", "Pools"), ("networks", "Networks"),
                ("vms", "VMs running/total"), ("guest", "Guest type")]


def fleet_host_info(ctx: Context, sample_cpu: bool, as_json: bool) -> None:
    """Versions, CPUs, memory and VMs of every selected host, a row each; --cpu adds CPU use."""
    from virtops.fleet import listings

    gathered = listings.infos(ctx.fleet(), cpu_window(sample_cpu))
    if as_json:
        emit_fleet_rows([{"host": host, **i} for host, i in gathered.rows()], [], True, gathered.failures)
        return
    rows = [{"host": host, "uri": i["uri"], "hostname": i["hostname"], "libvirt": i["libvirt_version"],
             "qemu": i["hypervisor_version"], "cpus": i["cpus"],
             "memory": f"{_size(i['memory_used_bytes'])} / {_size(i['memory_bytes'])}",
             "cpu": None if i["cpu_percent"] is None else f"{i['cpu_percent']:.1f}%",
             "pools": i["pools"], "networks": i["networks"], "vms": f"{i['running_domains']}/{i['domains']}",
             "guest": i["virt_type"]} for host, i in gathered.rows()]
    emit_fleet_rows(rows, HOST_COLUMNS, False, gathered.failures)


# -- the declarations -----------------------------------------------------------------------------
LISTINGS = (
    Listing("net", "list", net_list, flags=(Option(("--all", "-a"), "include_inactive", "Include inactive networks."),
                                            JSON), fleet=fleet_net_list),
    Listing("net", "info", net_info, args=(Arg("name", "network"),), flags=(JSON,)),
    Listing("pool", "list", pool_list, flags=(Option(("--all",), "show_all", "Include inactive pools."), JSON),
            fleet=fleet_pool_list),
    Listing("pool", "info", pool_info, args=(Arg("name", "pool"),), flags=(JSON,)),
    Listing("vol", "list", vol_list, args=(Arg("pool", "pool"),), flags=(JSON,), fleet=fleet_vol_list),
    Listing("vol", "info", vol_info, args=(Arg("volume", "volume", "POOL/VOL"),), flags=(JSON,)),
    Listing("vm", "list", vm_list, flags=(
        Option(("--all", "-a"), "show_all", "Stopped VMs too."),
        Option(("--long", "-l"), "long", "Disks with pool and volume, and NICs with MAC, network and IP "
                                       "(reads every VM's XML)."),
        JSON), fleet=fleet_vm_list),
    Listing("vm", "info", vm_info, args=(Arg("name", "vm"),), flags=(JSON,)),
    Listing("host", "info", host_info, flags=(
        Option(("--cpu",), "sample_cpu", "Sample the host's CPU use over 1 s (as virsh nodecpustats --percent does)."),
        JSON), fleet=fleet_host_info),
)
BY_PATH = {(listing.group, listing.name): listing for listing in LISTINGS}
