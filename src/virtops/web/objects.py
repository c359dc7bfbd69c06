"""A page per object: /vms/NAME, /networks/NAME, /pools/NAME and /pools/POOL/volumes/VOL (on a
fleet's console under /hosts/HOST/, which HostPaths maps), each with tabs whose name is the URL's
last part (/vms/NAME/devices), so that back and reload keep the place.

The server renders the frame (title, tabs, the forms that need the core's values) and checks that
the object exists, so that an unknown one is a 404 page that says so; static/objects.js fills the
tabs from /api, as the list pages do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from virtops.base.errors import NotFound
from virtops.host import Host
from virtops.web.auth import current_session
from virtops.web.fleet import host_of, served_of


@dataclass(frozen=True)
class Kind:
    key: str                      # objects.js's name for it: body[data-kind]
    label: str                    # "VM", in titles and the not-found sentence
    list_page: str                # the list page it is reached from: vms, networks, pools
    tabs: dict[str, str]          # URL part -> the tab's label; the first is the default
    read: Callable[[Host, str], object]  # raises NotFound for an unknown object


KINDS = {
    "vm": Kind("vm", "VM", "vms", {"overview": "Overview", "devices": "Disks and NICs", "settings": "Settings",
                                   "xml": "XML", "console": "Console"}, lambda host, name: host.vms.info(name)),
    "network": Kind("network", "network", "networks", {"overview": "Overview", "devices": "DHCP and leases",
                                                       "settings": "Settings", "xml": "XML"},
                    lambda host, name: host.networks.info(name)),
    "pool": Kind("pool", "pool", "pools", {"overview": "Overview", "devices": "Volumes", "settings": "Settings",
                                          "xml": "XML"}, lambda host, name: host.pools.info(name)),
    "volume": Kind("volume", "volume", "pools", {"overview": "Overview", "settings": "Settings", "xml": "XML"},
                   lambda host, ref: host.volumes.info(ref)),
}
BY_LIST = {"vms": KINDS["vm"], "networks": KINDS["network"], "pools": KINDS["pool"]}


def object_path(kind: Kind, name: str, pool: str | None = None) -> str:
    """The page's path below the host's base: /vms/NAME, /pools/POOL/volumes/VOL."""
    if pool is not None:
        return f"/pools/{quote(pool, safe='')}/volumes/{quote(name, safe='')}"
    return f"/{kind.list_page}/{quote(name, safe='')}"


def add_object_pages(app: FastAPI, templates, context: Callable[..., dict]) -> None:
    """context(request, session, page, title) is the list pages' own template context (app.py)."""

    @app.get("/pools/{pool}/volumes/{name}", response_class=HTMLResponse, include_in_schema=False)
    def volume_page(request: Request, pool: str, name: str):
        return _render(request, KINDS["volume"], name, pool, None)

    @app.get("/pools/{pool}/volumes/{name}/{tab}", response_class=HTMLResponse, include_in_schema=False)
    def volume_tab(request: Request, pool: str, name: str, tab: str):
        return _render(request, KINDS["volume"], name, pool, tab)

    def _render(request: Request, kind: Kind, name: str, pool: str | None, tab: str | None):
        if tab is not None and tab not in kind.tabs:
            raise StarletteHTTPException(404)
        served = served_of(request)  # an unknown host: 404 in the API's shape
        session = current_session(request)
        if session is None:
            path = object_path(kind, name, pool) + (f"/{tab}" if tab else "")
            return RedirectResponse(f"/login?next={page_base(request)}{path}")
        values = context(request, session, kind.list_page, kind.label)
        ref = f"{pool}/{name}" if pool is not None else name
        title = f"{kind.label} {ref}" if kind.key != "vm" else name
        values.update(page="object", section=kind.list_page, kind=kind.key, name=name, pool=pool or "",
                      title=title, tabs=kind.tabs, tab=tab or next(iter(kind.tabs)),
                      object_url=values["base"] + object_path(kind, name, pool), list_url=f"{values['base']}/{kind.list_page}")
        try:
            kind.read(host_of(request), ref)
        except NotFound:
            where = served.name if request.app.state.fleet.is_fleet else served.uri
            values.update(title="Not found", missing=f"no such {kind.label} '{ref}' on host {where}.")
            return templates.TemplateResponse(request, "notfound.html", values, status_code=404)
        return templates.TemplateResponse(request, "object.html", values)

    def _add_routes(app: FastAPI, path: str, kind: Kind) -> None:
        @app.get(path, response_class=HTMLResponse, include_in_schema=False, name=f"{kind.key}_page")
        def object_page(request: Request, name: str):
            return _render(request, kind, name, None, None)

        @app.get(path + "/{tab}", response_class=HTMLResponse, include_in_schema=False, name=f"{kind.key}_tab")
        def object_tab(request: Request, name: str, tab: str):
            return _render(request, kind, name, None, tab)

    for list_page, kind in BY_LIST.items():  # each its own paths: /api/... and /static/... stay theirs
        _add_routes(app, f"/{list_page}/{{name}}", kind)


def page_base(request: Request) -> str:
    """Where a host's pages are: /hosts/NAME on a fleet's server, / on a server of one host."""
    return f"/hosts/{served_of(request).path}" if request.app.state.fleet.is_fleet else ""
