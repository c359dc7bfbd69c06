"""The REST API under /api: a thin face that turns HTTP into calls on the core and the core's
answers and refusals into JSON. No rule lives here; the pages use exactly this API.

Refusals keep the core's sentence, its terms worded as the request's fields (ApiWording):
{"error": "...", "field": "..."} with 422 for a bad value, 404 for an unknown object, 409 for
anything else the host refused, 503 when no daemon answers.
"""
from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from virtops.base.errors import HostUnreachable, InvalidInput, NeedsOption, NotFound, Term, VirtopsError, Wording
from virtops.daemon.facts_models import HostInfo
from virtops.host import Host
from virtops.ops.impact import Impact, Way, ways_of
from virtops.ops.migrate import MoveOptions
from virtops.ops.network import (AddressHost, DhcpHost, EditPlan, HostKey, Lease, NetworkChanges, NetworkInfo,
                                 NetworkRequest)
from virtops.ops.pool import CreateResult as PoolCreateResult
from virtops.ops.pool import PoolInfo, PoolPermissions, PoolSource, PoolSpec
from virtops.ops.vm import (CreateRequest, DeleteResult, DetachResult, DiskInfo, DiskRequest, NicInfo,
                            NicRequest, SettingsResult, VmChanges, VmInfo, VmSummary)
from virtops.ops.volume import CreateResult as VolumeCreateResult
from virtops.ops.volume import TransferResult, VolumeInfo, VolumeRequest, streamed_length
from virtops.web import fleet
from virtops.web.auth import current_session, require_login


class ApiError(BaseModel):
    """A refusal: the core's one sentence, and the field it is about when there is one."""

    error: str
    field: str | None = None
    option: str | None = Field(None, description="the option of the first way out (force), when the refusal names one")
    ways: list[Way] = Field([], description="each way out: the same request again with option set to value (in the "
                                            "body when it has one, else as a query parameter), and what that does; "
                                            "the console offers each as a button")


ERRORS = {400: {"model": ApiError, "description": "a request that cannot be read (a body that is not JSON text)"},
          401: {"model": ApiError, "description": "not logged in"},
          403: {"model": ApiError, "description": "a change that comes neither from the console's pages nor with the X-CSRF-Token"},
          404: {"model": ApiError, "description": "no such object on the host"},
          409: {"model": ApiError, "description": "the host refused (in use, wrong state, ...)"},
          422: {"model": ApiError, "description": "a value that cannot be accepted; nothing changed"},
          503: {"model": ApiError, "description": "no libvirt daemon answers"}}


def plain_route_parameters(request: Request) -> None:
    """Names in a route come from the URL: a control character (a NUL byte, a newline) can name
    no libvirt object, and is refused before it reaches the core."""
    for name, value in request.path_params.items():
        check_route_parameter(name, value)


def check_route_parameter(name: str, value: str) -> None:
    odd = next((char for char in value if ord(char) < 32 or ord(char) == 127), None)
    if odd is not None:
        raise InvalidInput(name, f"holds the control character U+{ord(odd):04X}; give a name without control characters.")


router = APIRouter(prefix="/api", dependencies=[Depends(require_login), Depends(plain_route_parameters)], responses=ERRORS)
HEARTBEAT_S = 15.0  # keeps proxies and the browser from closing an idle event stream


def refusal(status: int, sentence: str, field: str | None = None, headers: dict | None = None,
            ways: NeedsOption | None = None) -> JSONResponse:
    """`ways`: the refusal whose ways out the answer names (its option and each way)."""
    body = {"error": sentence, "field": field}
    if ways is not None:
        body |= {"option": ways.option, "ways": [way.model_dump() for way in ways_of(ways)]}
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(err: VirtopsError) -> JSONResponse:
    """Several refusals at once (a VM's create) answer as the first's kind, all sentences included."""
    every = getattr(err, "errors", None) or [err]
    first = every[0]
    status = 422 if isinstance(first, InvalidInput) else 404 if isinstance(first, NotFound) \
        else 503 if isinstance(first, HostUnreachable) else 409
    sentence = "\n".join(one.worded(API_WORDING) for one in every)
    if isinstance(first, NeedsOption):  # the way out the core names: the console offers it as a button
        return refusal(status, sentence, api_field(first.field, first.location) or first.option, ways=first)
    return refusal(status, sentence, api_field(first.field, first.location))


class ApiWording(Wording):
    """The core's terms as the request's fields and values: "format": "qcow2", "start": false;
    hints to run a CLI command are said as the fields alone, or not at all."""

    def term(self, item: Term) -> str:
        return item.field if item.value is None else f"{json.dumps(item.field)}: {json.dumps(item.value)}"


API_WORDING = ApiWording()


def worded_failure(answer) -> str | None:
    """A fleet's answer or a bulk action's result that failed: the core's refusal in the API's terms."""
    failure = getattr(answer, "failure", None)
    return failure.worded(API_WORDING) if failure is not None else answer.error


def api_worded(result):
    """An answer whose warnings are the core's sentences (a pool QEMU cannot reach): in the API's terms."""
    result.warnings = [API_WORDING.words(warning) for warning in result.warnings]
    return result


def api_field(field: str | None, location: tuple = ()) -> str | None:
    """The body's path of the field: the core places it in the request (("disks", 1) and
    "volume": disks[1].volume) and names it as the body does."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return ".".join(p for p in (path, field) if p) or None


XML = {"response_class": Response,  # refusals stay JSON; only the answer is XML
       "responses": {200: {"description": "libvirt's own XML", "content": {"application/xml": {"schema": {"type": "string"}}}}}}


def xml(text: str) -> Response:
    return Response(text, media_type="application/xml")


def host_of(request: Request) -> Host:
    """The host of the request: the one /api/hosts/NAME/... names, else the server's first."""
    return fleet.host_of(request)


def publish(request: Request, kind: str, name: str, event: str) -> None:
    """For changes libvirt announces no event for: volumes, devices of a VM's definition (libvirt
    announces only those plugged into or out of a running guest), a network updated in place."""
    fleet.served_of(request).events.publish(kind, name, event)


class Done(BaseModel):
    done: list[str] = []


STRICT = ConfigDict(extra="forbid", defer_build=False)  # FastAPI reads the schema at once (deferred, pydantic warns)


class Body(BaseModel):
    """A request body: a field it does not know is refused (a typo must not fall back to a default)."""

    model_config = STRICT


# -- host -------------------------------------------------------------------------------------
@router.get("/host", response_model=HostInfo)
def host_info(request: Request):
    return host_of(request).info()


# -- pools and volumes ------------------------------------------------------------------------------
class Activation(Body):
    """What pool and network creation do after defining, as virt-manager's wizards do by default."""

    start: bool = True
    autostart: bool = True


class PoolCreate(PoolSpec, Activation):
    """The core's PoolSpec, strict as a body, with what pool creation does after defining."""

    model_config = STRICT
    build_device: bool = False  # logical, disk: make the volume group or partition table on the empty device


@router.get("/pools", response_model=list[PoolInfo])
def pools(request: Request):
    return host_of(request).pools.list()


@router.post("/pools", response_model=PoolCreateResult, status_code=201)
def pool_create(request: Request, body: PoolCreate):
    return api_worded(host_of(request).pools.create(body, start=body.start, autostart=body.autostart,
                                                    build_device=body.build_device))


@router.get("/pool-sources", response_model=list[PoolSource])
def pool_sources(request: Request, host: str, type: str = "netfs"):
    """virt-manager's "Browse": the exports a file server offers."""
    return host_of(request).pools.sources(type, host)


@router.get("/pools/{name}", response_model=PoolInfo)
def pool(request: Request, name: str):
    return host_of(request).pools.info(name)


@router.get("/pools/{name}/xml", **XML)
def pool_xml(request: Request, name: str):
    return xml(host_of(request).pools.dumpxml(name))


@router.post("/pools/{name}/actions/{action}", response_model=PoolInfo)
def pool_action(request: Request, name: str, action: Literal["start", "stop", "refresh"],
                force: bool = Query(False, description="stop: even while running VMs have disks in it")):
    pools = host_of(request).pools
    return pools.stop(name, force=force) if action == "stop" else getattr(pools, action)(name)


@router.get("/pools/{name}/impact", response_model=Impact)
def pool_impact(request: Request, name: str, action: Literal["stop", "delete"]):
    """What stopping or deleting the pool costs (the running VMs with disks in it), and the option it needs."""
    return host_of(request).pools.impact(name, action)


class Autostart(Body):
    autostart: bool = Field(description="start it with the host")


@router.post("/pools/{name}/autostart", response_model=PoolInfo)
def pool_autostart(request: Request, name: str, body: Autostart):
    """virsh pool-autostart (or --disable with false)."""
    return host_of(request).pools.set_autostart(name, body.autostart)


class Permissions(PoolPermissions):
    """The core's PoolPermissions, strict as a body: a dir pool's directory permissions, as
    `pool set`; absent ones stay."""

    model_config = STRICT


@router.post("/pools/{name}/permissions", response_model=PoolCreateResult)
def pool_permissions(request: Request, name: str, body: Permissions):
    """Redefine a dir pool's permissions and apply them to its directory (a running pool stops
    for a moment and starts again)."""
    return api_worded(host_of(request).pools.set_permissions(name, **body.model_dump()))


@router.delete("/pools/{name}", response_model=Done)
def pool_delete(request: Request, name: str, with_volumes: bool = False, keep_data: bool = False, force: bool = False):
    return Done(done=host_of(request).pools.delete(name, with_volumes=with_volumes, keep_data=keep_data, force=force))


@router.get("/pools/{name}/volumes", response_model=list[VolumeInfo])
def volumes(request: Request, name: str):
    return host_of(request).volumes.list(name)


class VolumeCreate(VolumeRequest):
    """The core's VolumeRequest, strict as a body."""

    model_config = STRICT


@router.post("/pools/{name}/volumes", response_model=VolumeCreateResult, status_code=201)
def volume_create(request: Request, name: str, body: VolumeCreate):
    result = host_of(request).volumes.create_from(name, body)
    publish(request, "volume", f"{name}/{body.name}", "created")
    return result


@router.get("/pools/{pool}/volumes/{name}", response_model=VolumeInfo)
def volume(request: Request, pool: str, name: str):
    return host_of(request).volumes.info(f"{pool}/{name}")


@router.get("/pools/{pool}/volumes/{name}/xml", **XML)
def volume_xml(request: Request, pool: str, name: str):
    return xml(host_of(request).volumes.dumpxml(f"{pool}/{name}"))


@router.get("/pools/{pool}/volumes/{name}/impact", response_model=Impact)
def volume_impact(request: Request, pool: str, name: str):
    """What deleting the volume costs (the VMs and overlays that use it), and the option it needs."""
    return host_of(request).volumes.impact(f"{pool}/{name}")


class VolumeResize(Body):
    size: str | int = Field(description="the new capacity: bytes, or with virsh's units: 2G")
    shrink: bool = Field(False, description="allow a smaller capacity (never below the allocation)")
    force: bool = Field(False, description="shrink even a disk of a running VM")


@router.post("/pools/{pool}/volumes/{name}/resize", response_model=VolumeCreateResult)
def volume_resize(request: Request, pool: str, name: str, body: VolumeResize):
    result = host_of(request).volumes.resize(f"{pool}/{name}", body.size, shrink=body.shrink, force=body.force)
    publish(request, "volume", f"{pool}/{name}", "resized")
    return result


class VolumeClone(Body):
    name: str = Field(description="the copy's name, in the same pool")
    linked: bool = Field(False, description="a qcow2 overlay on the original: instant, shares its data")


@router.post("/pools/{pool}/volumes/{name}/clone", response_model=VolumeCreateResult, status_code=201)
def volume_clone(request: Request, pool: str, name: str, body: VolumeClone):
    result = host_of(request).volumes.clone(f"{pool}/{name}", body.name, linked=body.linked)
    publish(request, "volume", f"{pool}/{body.name}", "created")
    return result


class VolumeWipe(Body):
    algorithm: str = Field("zero", description="zero, nnsa, dod, bsi, gutmann, schneier, pfitzner7, pfitzner33, random, trim")
    force: bool = Field(False, description="wipe even though VMs use it")


class WipeAnswer(Done):
    users: list[str] = Field([], description="what used the volume when it was wiped with force")


@router.post("/pools/{pool}/volumes/{name}/wipe", response_model=WipeAnswer)
def volume_wipe(request: Request, pool: str, name: str, body: VolumeWipe):
    users = host_of(request).volumes.wipe(f"{pool}/{name}", body.algorithm, force=body.force)
    publish(request, "volume", f"{pool}/{name}", "wiped")
    return WipeAnswer(done=[f"wiped {pool}/{name} ({body.algorithm})"], users=users)


@router.put("/pools/{pool}/volumes/{name}/content", response_model=TransferResult,
            openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}})
async def volume_upload(request: Request, pool: str, name: str, force: bool = False,
                        filename: str = Query("the upload", description="the file's name, for the sentences"),
                        create: bool = Query(False, description="make the volume first, raw and of the file's size "
                                                                "(removed again when the upload fails)")):
    """Write an image into the volume in place, as `vol upload`: the body is streamed to the
    daemon (never held whole), blocks of zeros stay holes. Needs Content-Length. With create, the
    volume is made for it (an ISO uploaded for a new VM's CD-ROM)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise InvalidInput("Content-Length", "is missing; send the file with its length (a browser's upload has it).")
    pieces = request.stream()

    def body():  # the async body, read piece by piece from the worker thread that writes it
        while True:
            try:
                piece = anyio.from_thread.run(pieces.__anext__)
            except StopAsyncIteration:
                return
            if piece:
                yield piece

    volumes = host_of(request).volumes
    if create:
        result = await run_in_threadpool(volumes.upload_new, pool, name, int(length), body())
    else:
        result = await run_in_threadpool(volumes.upload_chunks, f"{pool}/{name}", int(length), body(),
                                         name=filename, force=force)
    publish(request, "volume", f"{pool}/{name}", "uploaded")
    return result


@router.get("/pools/{pool}/volumes/{name}/content", response_class=StreamingResponse,
            responses={200: {"description": "the volume's content, holes as zeros",
                             "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
def volume_download(request: Request, pool: str, name: str):
    """The volume's content as a download, as `vol download` (streamed from the daemon; the
    holes cross libvirt's wire as lengths and HTTP as zeros)."""
    info, pieces = host_of(request).volumes.download_chunks(f"{pool}/{name}")
    headers = {"Content-Disposition": f'attachment; filename="{_download_name(info.name)}"'}
    length = streamed_length(info)
    if length is not None:  # the browser shows the download's progress and knows a cut-short one
        headers["Content-Length"] = str(length)
    return StreamingResponse(pieces, media_type="application/octet-stream", headers=headers)


def _download_name(name: str) -> str:
    """The volume's name as a file name in the header: no quote, backslash or non-ASCII character."""
    return "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)


@router.delete("/pools/{pool}/volumes/{name}", response_model=Done)
def volume_delete(request: Request, pool: str, name: str, force: bool = False):
    done = host_of(request).volumes.delete(f"{pool}/{name}", force=force)
    publish(request, "volume", f"{pool}/{name}", "deleted")
    return Done(done=done)


# -- networks ------------------------------------------------------------------------------------
class NetworkCreate(NetworkRequest, Activation):
    """The core's NetworkRequest, strict as a body (virt-manager's four steps: name; IPv4 address
    space; DHCP range; mode and forwarding), with what creation does after defining."""

    model_config = STRICT


@router.get("/networks", response_model=list[NetworkInfo])
def networks(request: Request):
    return host_of(request).networks.list()


@router.post("/networks", response_model=NetworkInfo, status_code=201)
def network_create(request: Request, body: NetworkCreate):
    return host_of(request).networks.create_from(body, start=body.start, autostart=body.autostart)


@router.post("/networks/xml", response_model=NetworkInfo, status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}})
async def network_define(request: Request, start: bool = False, replace: bool = False):
    """Define a network from its XML, as `virsh net-define FILE` (a saved net-dumpxml restores it)."""
    text = (await request.body()).decode(errors="replace")
    return await run_in_threadpool(host_of(request).networks.define, text, replace=replace, start=start)


class NetworkEdit(NetworkChanges):
    """The core's NetworkChanges, strict as a body: the fields to change; absent ones stay."""

    model_config = STRICT
    yes: bool = Field(False, description="run a plan that restarts the network (a change libvirt cannot make in place)")


class EditAnswer(BaseModel):
    plan: EditPlan
    done: bool = Field(description="false: the plan needs a restart and waits for yes")


@router.post("/networks/{name}/edit", response_model=EditAnswer, response_model_exclude={"plan": {"new_xml"}})
def network_edit(request: Request, name: str, body: NetworkEdit):
    """Changed in place where libvirt can (net-update); otherwise an announced redefine, restart and
    re-attach of running guests' NICs, run only with yes."""
    plan, done = host_of(request).networks.edit(name, **body.model_dump())
    if done and plan.steps:
        publish(request, "network", name, "updated")  # libvirt announces no in-place update
    return EditAnswer(plan=plan, done=done)


@router.get("/networks/{name}", response_model=NetworkInfo)
def network(request: Request, name: str):
    return host_of(request).networks.info(name)


@router.get("/networks/{name}/leases", response_model=list[Lease])
def network_leases(request: Request, name: str):
    """The DHCP leases dnsmasq handed out (virsh net-dhcp-leases); libvirt announces no event for
    them, so the network's page asks every few seconds while it is shown."""
    return host_of(request).networks.leases(name)


@router.get("/networks/{name}/xml", **XML)
def network_xml(request: Request, name: str, inactive: bool = False):
    return xml(host_of(request).networks.dumpxml(name, inactive=inactive))


@router.post("/networks/{name}/actions/{action}", response_model=NetworkInfo)
def network_action(request: Request, name: str, action: Literal["start", "stop"],
                   force: bool = Query(False, description="stop: even while running guests have NICs on it")):
    """Start re-plugs the NICs of running guests on it; stop is refused while there are any, unless force."""
    networks = host_of(request).networks
    return networks.stop(name, force=force) if action == "stop" else networks.start(name)


@router.get("/networks/{name}/impact", response_model=Impact)
def network_impact(request: Request, name: str, action: Literal["stop", "delete", "restart"]):
    """What stopping, deleting or restarting (an edit that needs it) the network costs: the running guests it
    cuts off, and the option it needs."""
    return host_of(request).networks.impact(name, action)


@router.post("/networks/{name}/autostart", response_model=NetworkInfo)
def network_autostart(request: Request, name: str, body: Autostart):
    """virsh net-autostart (or --disable with false)."""
    return host_of(request).networks.set_autostart(name, body.autostart)


class DhcpHostBody(DhcpHost):
    """The core's DhcpHost, strict as a body."""

    model_config = STRICT


@router.post("/networks/{name}/hosts", response_model=DhcpHost, status_code=201)
def network_host_add(request: Request, name: str, body: DhcpHostBody):
    """A static DHCP lease, live and persistent (`net host add`)."""
    entry = host_of(request).networks.host_add(name, body.mac, body.ip, body.name)
    publish(request, "network", name, "updated")
    return entry


class HostKeyBody(HostKey):
    """The core's HostKey, strict as a body: exactly one of mac, name, ip, duid."""

    model_config = STRICT


@router.post("/networks/{name}/hosts/remove", response_model=AddressHost)
def network_host_remove(request: Request, name: str, body: HostKeyBody):
    """Remove the static DHCP lease that exactly one of mac, name, ip or duid picks, under any address of
    the network, live and persistent (`net host remove`): hosts known by name only or by DUID have no MAC."""
    entry = host_of(request).networks.host_remove(name, mac=body.mac, host_name=body.name, ip=body.ip,
                                                  duid=body.duid)
    publish(request, "network", name, "updated")
    return entry


@router.delete("/networks/{name}/hosts/{mac}", response_model=AddressHost)
def network_host_remove_by_mac(request: Request, name: str, mac: str):
    """The static DHCP lease of a MAC (POST .../hosts/remove picks one by any of its keys)."""
    entry = host_of(request).networks.host_remove(name, mac=mac)
    publish(request, "network", name, "updated")
    return entry


@router.delete("/networks/{name}", response_model=Done)
def network_delete(request: Request, name: str, force: bool = False):
    return Done(done=host_of(request).networks.delete(name, force=force))


# -- VMs ----------------------------------------------------------------------------------------------
@router.get("/vms", response_model=list[VmSummary])
def vms(request: Request, nics: bool = Query(False, description="each VM's MACs and networks too (reads every VM's XML)")):
    return host_of(request).vms.summaries(all=True, nics=nics)


class VmBulk(Body):
    action: Literal["start", "shutdown", "destroy", "delete"]
    names: list[str] = Field(min_length=1, description="the VMs, each done in turn under the core's rules")
    remove_storage: bool = Field(False, description="delete: their volumes too (never one another VM uses)")


class VmBulkResult(BaseModel):
    name: str
    ok: bool
    done: str | None
    error: str | None


class VmBulkAnswer(BaseModel):
    results: list[VmBulkResult]


@router.post("/vms/bulk", response_model=VmBulkAnswer)
def vms_bulk(request: Request, body: VmBulk):
    """Start, shut down, force off or delete several VMs: one result per VM, done or the core's
    sentence why not (the others go on). Delete keeps their volumes unless remove_storage, and
    refuses a running VM (delete it alone with force)."""
    from virtops.fleet.actions import each_vm

    results = each_vm(host_of(request), body.action, body.names, remove_storage=body.remove_storage)
    return VmBulkAnswer(results=[VmBulkResult(**{**result.as_dict(), "error": worded_failure(result)})
                                 for result in results])


# The core's request models, strict as bodies (their nested ones are strict in the core).
class DiskBody(DiskRequest):
    model_config = STRICT


class NicBody(NicRequest):
    model_config = STRICT


class VmCreate(CreateRequest):
    """The core's CreateRequest, strict as a body."""

    model_config = STRICT


@router.post("/vms", response_model=VmInfo, status_code=201)
def vm_create(request: Request, body: VmCreate):
    """Define a VM (and start it with start): disks as pool volumes, new volumes, NICs on networks;
    type kvm where `host check` found KVM usable, qemu otherwise. Undone as a whole on failure."""
    return host_of(request).vms.create(body)


@router.get("/vms/{name}", response_model=VmInfo)
def vm(request: Request, name: str):
    return host_of(request).vms.info(name)


@router.get("/vms/{name}/xml", **XML)
def vm_xml(request: Request, name: str, inactive: bool = False):
    return xml(host_of(request).vms.dumpxml(name, inactive=inactive))


class VmSettings(VmChanges):
    """`vm set`: the core's VmChanges, strict as a body (the fields to change in the VM's
    definition; absent ones stay), and how the VM boots otherwise."""

    model_config = STRICT
    no_boot: bool = Field(False, description="drop direct kernel boot: boot from the first disk")
    boot_order: list[str] | None = Field(None, description="BIOS boot order of hd, cdrom, network, fd, e.g. [\"cdrom\", \"hd\"]")


@router.post("/vms/{name}/settings", response_model=SettingsResult)
def vm_settings(request: Request, name: str, body: VmSettings):
    """A running VM keeps its memory, vCPUs and boot until its next boot (next_boot names them)."""
    if body.boot and body.no_boot:
        raise InvalidInput("no_boot", "cannot be combined with boot; give one of them.")
    result = host_of(request).vms.update(name, memory=body.memory, vcpus=body.vcpus, boot=body.boot,
                                         change_boot=bool(body.boot or body.no_boot), autostart=body.autostart,
                                         boot_order=body.boot_order)
    publish(request, "domain", name, "updated")
    return result


@router.get("/vms/{name}/storage", response_model=list[str])
def vm_storage(request: Request, name: str):
    """POOL/VOL of each volume a delete with remove_storage would delete (refused as it would be)."""
    return host_of(request).vms.storage(name)


@router.delete("/vms/{name}", response_model=DeleteResult)
def vm_delete(request: Request, name: str, remove_storage: bool = False, force: bool = False):
    """Undefine; remove_storage also deletes its volumes (never one another VM uses); a running VM
    needs force, which destroys it first."""
    return host_of(request).vms.delete(name, remove_storage=remove_storage, force=force)


@router.get("/vms/{name}/impact", response_model=Impact)
def vm_impact(request: Request, name: str, action: Literal["destroy", "delete", "detach-disk", "detach-nic"],
              device: str | None = Query(None, description="detach-disk: the disk's target; detach-nic: the NIC's MAC")):
    """What destroying or deleting the VM, or detaching one of its devices, costs, and the option it needs."""
    return host_of(request).vms.impact(name, action, device)


@router.post("/vms/{name}/actions/{action}", response_model=Done)
def vm_action(request: Request, name: str,
              action: Literal["start", "shutdown", "reboot", "destroy", "suspend", "resume"]):
    getattr(host_of(request).vms, action)(name)
    return Done(done=[f"{action} {name}"])


class MigrateBody(MoveOptions):
    """The core's MoveOptions and where to: the VM is the route's."""

    to: str = Field(description="the destination: a registered host name or lab:NAME")


def _moves(request: Request) -> dict:
    """The moves of the request's host: VM name -> BackgroundMove, the one under way or the last
    that ended (a fleet's hosts may have VMs of one name)."""
    if not hasattr(request.app.state, "moves"):
        request.app.state.moves = {}
    return request.app.state.moves.setdefault(fleet.served_of(request).name, {})


@router.post("/vms/{name}/migrate", status_code=202)
def vm_migrate(request: Request, name: str, body: MigrateBody):
    """Check the move (a refusal answers at once, nothing moved), then start it and answer 202:
    GET .../migrate shows its progress and how it ended, POST .../migrate/cancel stops it and the
    VM stays here."""
    from virtops.ops.migrate import BackgroundMove, MigrateRequest, check_named_destination

    check_named_destination(body.to)
    moves = _moves(request)
    if name in moves and moves[name].state == "moving":
        raise InvalidInput("name", f"{name} is being moved already; wait for it or cancel it.")
    move = moves[name] = BackgroundMove(fleet.host_for_a_thread(request), body.to, MigrateRequest(
        name=name, **body.model_dump(exclude={"to"})), on_end=lambda done: publish(request, "domain", name, f"migrate-{done.state}"))
    return move.as_dict()


@router.get("/vms/{name}/migrate")
def vm_migrate_progress(request: Request, name: str):
    """The move under way (state "moving", progress) or the last one that ended ("moved" with its
    result, "failed" with the sentence)."""
    move = _moves(request).get(name)
    if move is None:
        raise NotFound(f"vm: {name} has not been moved by this server.")
    return move.as_dict()


class JobProgress(BaseModel):
    phase: str = Field(description="memory, or disks (copied first)")
    processed: int
    total: int
    elapsed_s: float


class Job(BaseModel):
    operation: str = Field(description="move, incoming move, save, restore, dump, snapshot, backup, start, job")
    elapsed_s: float
    progress: JobProgress | None = None


class JobAnswer(BaseModel):
    job: Job | None = Field(description="none: libvirt runs no job on the VM")


@router.get("/vms/{name}/job", response_model=JobAnswer)
def vm_job(request: Request, name: str):
    """The job libvirt runs on the VM now, whoever started it (this server, `vm migrate`, virsh),
    with its progress: what the VM's page shows while a move is under way."""
    return JobAnswer(job=host_of(request).vms.job(name))


@router.post("/vms/{name}/migrate/cancel", response_model=Done)
def vm_migrate_cancel(request: Request, name: str):
    move = _moves(request).get(name)
    if move is None or move.state != "moving":
        raise NotFound(f"vm: {name} is not being moved.")
    move.cancel()
    return Done(done=[f"cancel the move of {name}"])


class Halves(BaseModel):
    """Which halves of a running VM a device change affects, beside the device's own fields."""

    live: bool | None = Field(None, description="default: live and persistent on a running VM, persistent otherwise")
    config: bool | None = None


HALVES = set(Halves.model_fields)


class DiskAttach(DiskBody, Halves):
    pass


@router.post("/vms/{name}/disks", response_model=DiskInfo, status_code=201)
def disk_attach(request: Request, name: str, body: DiskAttach):
    disk = host_of(request).vms.attach_disk(name, DiskRequest(**body.model_dump(exclude=HALVES)),
                                            live=body.live, config=body.config)
    publish(request, "domain", name, "disk-attached")
    return disk


@router.delete("/vms/{name}/disks/{target}", response_model=DetachResult)
def disk_detach(request: Request, name: str, target: str, live: bool | None = None, config: bool | None = None):
    result = host_of(request).vms.detach_disk(name, target, live=live, config=config)
    publish(request, "domain", name, "disk-detached")
    return result


class NicAttach(NicBody, Halves):
    pass


@router.post("/vms/{name}/nics", response_model=NicInfo, status_code=201)
def nic_attach(request: Request, name: str, body: NicAttach):
    nic = host_of(request).vms.attach_nic(name, NicRequest(**body.model_dump(exclude=HALVES)),
                                          live=body.live, config=body.config)
    publish(request, "domain", name, "nic-attached")
    return nic


@router.delete("/vms/{name}/nics/{mac}", response_model=DetachResult)
def nic_detach(request: Request, name: str, mac: str, live: bool | None = None, config: bool | None = None):
    result = host_of(request).vms.detach_nic(name, mac, live=live, config=config)
    publish(request, "domain", name, "nic-detached")
    return result


# -- backup -------------------------------------------------------------------------------------------
@router.get("/backup", response_class=Response,
            responses={200: {"description": "the host's configuration as `virtops backup create` writes it",
                             "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}})
def backup(request: Request):
    """Every pool, volume's metadata, network and domain with checksums; `virtops backup restore` reads it."""
    from virtops.backup.archive import create_backup, default_output_name

    host = host_of(request)
    name = default_output_name(host).name
    with tempfile.TemporaryDirectory(prefix="virtops-web-backup-") as scratch:
        archive = Path(scratch) / name
        create_backup(host, archive)
        data = archive.read_bytes()
    return Response(data, media_type="application/gzip", headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- live updates -------------------------------------------------------------------------------
@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def events(request: Request, heartbeat: float = Query(HEARTBEAT_S, gt=0, le=300)):
    """Server-sent events from libvirt: {"kind": "domain"|"network"|"pool"|"volume", "name", "event"},
    on a server of several hosts with "host" too: /api/events carries every host's, and
    /api/hosts/NAME/events that host's only. The stream ends with its session (logged out, expired)."""
    served = fleet.served_of(request)
    hub, only = served.events, request.scope.get(fleet.SCOPE_KEY)

    async def stream():
        with hub.subscription() as queue:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected() and current_session(request, touch=False) is not None:
                try:
                    message = await asyncio.wait_for(queue.get(), heartbeat)
                except asyncio.TimeoutError:
                    yield ": idle\n\n"
                    continue
                if only is not None and message.get("host", only) != only:
                    continue
                yield f"event: {message['kind']}\ndata: {json.dumps(message)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
