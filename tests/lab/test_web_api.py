"""The REST API of `virtops serve`, against a real libvirtd: login, the handbook's steps, the
refusals (one sentence, a field, the host unchanged), OpenAPI, and live events from libvirt."""
from __future__ import annotations

import json
import threading
import time

import httpx
import libvirt
import pytest

from tests.conftest import WEB_PASSWORD
from tests.helpers import host_state
from virtops.xmlmodels import doc as X

MIB = 1 << 20


@pytest.fixture(scope="module")
def api(web_server):
    """A script's session: it sends the login's CSRF token with every change (docs/security.md)."""
    with httpx.Client(base_url=web_server, timeout=60) as client:
        login = client.post("/login", json={"password": WEB_PASSWORD})
        assert login.status_code == 200
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield client


@pytest.fixture(scope="module")
def conn(web_lab):
    conn = libvirt.open(web_lab.uri)
    yield conn
    conn.close()


def test_login_is_required(web_server):
    with httpx.Client(base_url=web_server) as anonymous:
        assert anonymous.get("/api/pools").status_code == 401
        assert anonymous.get("/api/events").status_code == 401
        page = anonymous.get("/pools")
        assert page.status_code == 307 and page.headers["location"] == "/login?next=/pools"
        wrong = anonymous.post("/login", json={"password": "guess"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "password"
        assert anonymous.get("/api/pools").status_code == 401
        right = anonymous.post("/login", json={"password": WEB_PASSWORD})
        assert right.status_code == 200
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert anonymous.get("/api/pools").status_code == 200
        assert anonymous.post("/logout", headers={"X-CSRF-Token": right.json()["csrf_token"]}).status_code == 200
        assert anonymous.get("/api/pools").status_code == 401


def test_handbook_steps_through_the_api(api, conn):
    pool = api.post("/api/pools", json={"name": "test", "type": "dir", "target": "/var/lib/libvirt/test",
                                        "owner": "root", "group": "root", "mode": "0700"})
    assert pool.status_code == 201, pool.text
    assert pool.json()["pool"] | {} and pool.json()["pool"]["mode"] == "0700"
    live = conn.storagePoolLookupByName("test")
    assert live.isActive() and live.autostart()

    vol = api.post("/api/pools/test/volumes", json={"name": "test", "capacity": "1000M", "allocation": 0, "format": "raw"})
    assert vol.status_code == 201, vol.text
    assert vol.json()["volume"]["capacity"] == 1000 * MIB
    assert live.storageVolLookupByName("test").info()[1] == 1048576000
    assert [v["name"] for v in api.get("/api/pools/test/volumes").json()] == ["test"]

    net = api.post("/api/networks", json={"name": "mynetwork", "subnet": "192.168.200.0/24",
                                          "dhcp": "192.168.200.128-192.168.200.254", "mode": "route"})
    assert net.status_code == 201, net.text
    assert (net.json()["mode"], net.json()["gateway"], net.json()["dhcp_range"]) == \
        ("route", "192.168.200.1", "192.168.200.128-192.168.200.254")
    listed = {n["name"]: n for n in api.get("/api/networks").json()}
    assert listed["default"]["active"] and listed["mynetwork"]["autostart"]
    xml = api.get("/api/networks/default/xml")
    assert xml.headers["content-type"] == "application/xml" and "<bridge name='virbr0'" in xml.text
    assert xml.text == conn.networkLookupByName("default").XMLDesc(0)


def test_network_xml_backup_restores_the_same_network(api, conn):
    """SCENARIO step 7 over the API: save a network's XML, delete it, define it from the file."""
    saved = api.get("/api/networks/mynetwork/xml", params={"inactive": True}).text
    assert api.delete("/api/networks/mynetwork").status_code == 200
    defined = api.post("/api/networks/xml", content=saved, params={"start": True},
                       headers={"Content-Type": "application/xml"})
    assert defined.status_code == 201, defined.text
    assert defined.json()["active"]
    assert conn.networkLookupByName("mynetwork").XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE) == saved
    before = host_state(conn)
    again = api.post("/api/networks/xml", content=saved, headers={"Content-Type": "application/xml"})
    assert again.status_code == 409 and "mynetwork" in again.json()["error"]
    broken = api.post("/api/networks/xml", content="<network><name>x", headers={"Content-Type": "application/xml"})
    assert broken.status_code == 422, broken.text
    assert host_state(conn) == before


def test_network_edit_in_place_or_by_an_announced_plan(api, conn):
    """A DHCP range changes in place; a new subnet needs a restart, planned first, run with yes."""
    api.post("/api/networks", json={"name": "editme", "subnet": "10.77.0.0/24", "mode": "isolated"})
    live = api.post("/api/networks/editme/edit", json={"dhcp": "10.77.0.100-10.77.0.150"}).json()
    assert live["done"] and live["plan"]["live"] and "no restart" in live["plan"]["steps"][0]
    assert "new_xml" not in live["plan"]
    net = conn.networkLookupByName("editme")
    assert X.parse(net.XMLDesc(0)).find("ip/dhcp/range").attrib == {"start": "10.77.0.100", "end": "10.77.0.150"}

    before = host_state(conn)
    planned = api.post("/api/networks/editme/edit", json={"subnet": "10.78.0.0/24"}).json()
    assert not planned["done"] and any(step.startswith("restart editme") for step in planned["plan"]["steps"])
    assert host_state(conn) == before  # a plan changes nothing
    applied = api.post("/api/networks/editme/edit", json={"subnet": "10.78.0.0/24", "yes": True}).json()
    assert applied["done"]
    assert X.parse(conn.networkLookupByName("editme").XMLDesc(0)).find("ip").get("address") == "10.78.0.1"
    refused = api.post("/api/networks/editme/edit", json={"subnet": "192.168.122.0/24", "yes": True})
    assert refused.status_code == 422 and refused.json()["field"] == "subnet"
    flagged = api.post("/api/networks/editme/edit", json={"ipv6_guests": True, "yes": True}).json()
    assert flagged["done"] and "IPv6 between guests off -> on" in flagged["plan"]["steps"][0]
    assert X.parse(conn.networkLookupByName("editme").XMLDesc(0)).get("ipv6") == "yes"
    assert api.get("/api/networks/editme").json()["ipv6_guests"] is True
    assert api.delete("/api/networks/editme").status_code == 200


def test_backup_download_is_a_restorable_archive(api, conn, tmp_path):
    import tarfile

    from virtops.backup.archive import read_backup

    response = api.get("/api/backup")
    assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
    name = response.headers["content-disposition"].split('filename="')[1].rstrip('"')
    archive = tmp_path / name
    archive.write_bytes(response.content)
    assert tarfile.is_tarfile(archive)
    objects = {f"{o.kind}/{o.name}" for o in read_backup(archive).objects}  # verifies every checksum
    assert {"network/default", "network/mynetwork", "pool/test", "volume/test/test"} <= objects


@pytest.mark.parametrize("method, path, body, status, field", [
    ("post", "/api/networks", {"name": "other", "subnet": "192.168.122.0/25"}, 422, "subnet"),
    ("post", "/api/networks", {"name": "other", "subnet": "10.9.0.0/24", "dhcp": "10.9.1.10-10.9.1.20"}, 422, "dhcp"),
    ("post", "/api/networks", {"name": "bad name!", "subnet": "10.9.0.0/24"}, 422, "name"),
    ("post", "/api/networks", {"name": "other", "mode": "tunnel"}, 422, "mode"),
    ("post", "/api/networks", {"name": "other", "subnet": "10.9.0.0/24", "nat_ipv6": True}, 422, "nat_ipv6"),
    ("post", "/api/pools", {"name": "p2", "type": "dir", "target": "relative/path"}, 422, "target"),
    ("post", "/api/pools/nope/volumes", {"name": "v", "capacity": "1G"}, 404, None),
    ("post", "/api/pools/default-missing/volumes", {"name": "v", "capacity": "lots"}, 422, "capacity"),
    ("get", "/api/vms/nope", None, 404, None),
    ("post", "/api/vms/nope/disks", {"volume": "test/test"}, 404, None),
    ("delete", "/api/networks/nope", None, 404, None),
])
def test_refusals_are_one_sentence_and_change_nothing(api, conn, method, path, body, status, field):
    before = host_state(conn)
    response = api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field
    assert answer["error"].count(". ") == 0 and answer["error"].endswith(".") and "\n" not in answer["error"]
    assert host_state(conn) == before


def test_volume_bigger_than_the_pool_is_refused(api, conn):
    before = host_state(conn)
    response = api.post("/api/pools/test/volumes", json={"name": "huge", "capacity": "100P", "allocation": "100P"})
    assert response.status_code == 422 and response.json()["field"] == "allocation", response.text
    assert host_state(conn) == before


def test_openapi_document_describes_the_api(web_server):
    doc = httpx.get(f"{web_server}/openapi.json").json()
    assert doc["info"]["title"] == "virtops"
    for path in ("/api/pools", "/api/pools/{name}/volumes", "/api/networks", "/api/vms/{name}/disks",
                 "/api/vms/{name}/nics", "/api/events", "/login"):
        assert path in doc["paths"], path
    assert "NetworkCreate" in doc["components"]["schemas"]


class EventListener:
    """Reads /api/events in a thread until `done(events so far)` holds."""

    def __init__(self, api: httpx.Client, done):
        self.received: list[dict] = []
        self._api, self._done, self._opened = api, done, threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "the event stream did not open"

    def _listen(self) -> None:
        with self._api.stream("GET", "/api/events", params={"heartbeat": 1}) as stream:
            kind = None
            for line in stream.iter_lines():
                self._opened.set()
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind:
                    self.received.append(json.loads(line.removeprefix("data: ")))
                    if self._done(self.received):
                        return

    def words(self) -> list[str]:
        return [f"{e['kind']}:{e['name']}:{e['event']}" for e in self.received]

    def wait(self, timeout_s: float = 20) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"events seen: {self.received}"


def test_libvirt_events_reach_the_event_stream(api, conn):
    """A change made behind virtops' back (straight through libvirt) arrives as an event."""
    events = EventListener(api, lambda seen: {"network:stopped", "network:started"}
                           <= {f"{e['kind']}:{e['event']}" for e in seen})
    net = conn.networkLookupByName("mynetwork")
    net.destroy()
    net.create()
    events.wait()
    assert {"kind": "network", "name": "mynetwork", "event": "stopped"} in events.received


def test_events_keep_flowing_after_the_daemon_restarts(api, web_lab):
    """The hub says the host went away, subscribes again on a new connection, and then libvirt's
    events of the new daemon arrive on the same stream."""
    reconnected = f"host:{web_lab.uri}:reconnected"

    def stopped_after_reconnecting(seen: list[dict]) -> bool:
        words = [f"{e['kind']}:{e['name']}:{e['event']}" for e in seen]
        return reconnected in words and "network:mynetwork:stopped" in words[words.index(reconnected):]

    events = EventListener(api, stopped_after_reconnecting)
    web_lab.down(remove_state=False)  # stops the networks first: libvirt reports that too
    web_lab.up(uplink=True)
    deadline = time.monotonic() + 30
    while reconnected not in events.words() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [e["event"] for e in events.received if e["kind"] == "host"] == ["disconnected", "reconnected"], \
        events.received
    conn = libvirt.open(web_lab.uri)
    try:
        net = conn.networkLookupByName("mynetwork")
        if not net.isActive():  # a restarted daemon autostarts nothing: only a boot does
            net.create()
        net.destroy()  # on the new daemon
        events.wait()
        net.create()
    finally:
        conn.close()
    assert api.get("/api/networks/mynetwork").json()["active"]  # the API's own connection reopened too


def test_serve_refuses_bad_options_in_one_sentence(web_lab, tmp_path):
    from tests.helpers import run_cli

    listen = run_cli("serve", "--listen", "8080", uri=web_lab.uri)
    assert listen.returncode == 1 and listen.stderr.strip() == \
        "error: --listen: '8080' is not ADDRESS:PORT; give one such as 127.0.0.1:8080."
    short = tmp_path / "short"
    short.write_text("abc\n")
    weak = run_cli("serve", "--password-file", str(short), uri=web_lab.uri)
    assert weak.returncode == 1 and "at least 8 characters" in weak.stderr and len(weak.stderr.splitlines()) == 1
    missing = run_cli("serve", "--password-file", str(tmp_path / "none"), uri=web_lab.uri)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    nowhere = run_cli("serve", uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("error: No libvirt daemon answers at")


def test_console_websocket_needs_login_and_our_own_origin(web_server, api):
    from tests.helpers import websocket_close_code

    url = web_server.replace("http://", "ws://") + "/api/vms/none/console"
    cookie = "; ".join(f"{name}={value}" for name, value in api.cookies.items())

    def closed_with(headers: dict) -> int:
        return websocket_close_code(url, headers)

    assert closed_with({}) == 4401
    assert closed_with({"Cookie": cookie, "Origin": "http://evil.example"}) == 4403
    assert closed_with({"Cookie": cookie, "Origin": web_server}) == 4409  # VM "none": refused by the core


def test_serve_over_https(web_lab, tmp_path):
    """--tls-cert/--tls-key: HTTPS, a Secure session cookie; a bad certificate is one sentence."""
    import socket
    import ssl
    import subprocess
    import sys

    from tests.helpers import run_cli

    cert, key, password = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "password"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    password.write_text("https-password\n")
    bad = run_cli("serve", "--tls-cert", str(password), "--tls-key", str(key), uri=web_lab.uri)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --tls-cert: cannot use") and len(bad.stderr.splitlines()) == 1
    half = run_cli("serve", "--tls-cert", str(cert), uri=web_lab.uri)
    assert half.returncode == 1 and "needs both" in half.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        taken = run_cli("serve", "--listen", f"127.0.0.1:{port}", uri=web_lab.uri)
        assert taken.returncode == 1 and taken.stderr.startswith(f"error: --listen: cannot listen on 127.0.0.1:{port}")
    server = subprocess.Popen([sys.executable, "-m", "virtops", "-c", web_lab.uri, "serve", "--listen", f"127.0.0.1:{port}",
                               "--password-file", str(password), "--tls-cert", str(cert), "--tls-key", str(key)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(cert))) as client:
            for _ in range(100):
                try:
                    login = client.post("/login", json={"password": "https-password"})
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert login.status_code == 200 and "secure" in login.headers["set-cookie"].lower()
            assert client.get("/api/networks").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
