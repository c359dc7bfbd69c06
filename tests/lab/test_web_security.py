"""Hostile requests against a real `virtops serve` on a lab host (issue 12, the web findings):
sessions that end, CSRF from a page of the same site, strict REST bodies, the API's error shape
for every route and odd route parameters, the login rate limit, and the security headers."""
from __future__ import annotations

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import libvirt
import pytest

from tests.conftest import WEB_PASSWORD
from tests.helpers import free_port, host_state, serve_process as own_server

TOKEN_HEADER = "X-CSRF-Token"


@contextlib.contextmanager
def logged_in_client(base_url: str, password: str = WEB_PASSWORD):
    """A script's client: it logs in and sends the CSRF token the login answered (a script sends
    neither Origin nor Referer)."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        login = client.post("/login", json={"password": password})
        assert login.status_code == 200, login.text
        token = login.json().get("csrf_token")
        if token:
            client.headers[TOKEN_HEADER] = token
        yield client


@pytest.fixture(scope="module")
def api(web_server):
    with logged_in_client(web_server) as client:
        yield client


@pytest.fixture(scope="module")
def conn(web_lab):
    conn = libvirt.open(web_lab.uri)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def idle_network(api, conn):
    """An isolated network, defined and not started: what a forged request would start."""
    name = "csrf-target"
    made = api.post("/api/networks", json={"name": name, "subnet": "10.66.0.0/24", "mode": "isolated",
                                           "start": False, "autostart": False})
    assert made.status_code == 201, made.text
    yield name
    with contextlib.suppress(libvirt.libvirtError):
        net = conn.networkLookupByName(name)
        if net.isActive():
            net.destroy()
        net.undefine()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(WEB_PASSWORD + "\n")
    return path


def assert_api_error(response: httpx.Response, status: int, field: str | None = None) -> str:
    """The API's refusal: {"error": one sentence, "field": ...}; returns the sentence."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    answer = response.json()
    assert set(answer) == {"error", "field"}, answer
    assert answer["field"] == field, answer
    sentence = answer["error"]
    assert sentence.endswith(".") and ". " not in sentence and "\n" not in sentence, sentence
    return sentence


# -- 2. sessions are server-side: logout, password change and restart end them; they expire --------
def test_a_cookie_saved_before_logout_is_refused_afterwards(web_server, idle_network):
    with logged_in_client(web_server) as client:
        saved = dict(client.cookies)
        token = client.headers.get(TOKEN_HEADER)
        assert client.get("/api/host").status_code == 200
        assert client.post("/logout").status_code == 200
    with httpx.Client(base_url=web_server, cookies=saved, headers={TOKEN_HEADER: token or ""}) as replay:
        assert_api_error(replay.get("/api/host"), 401)
        assert_api_error(replay.post(f"/api/networks/{idle_network}/actions/start"), 401)
        assert_api_error(replay.post("/logout"), 401)


def test_logout_without_login_is_401_in_the_api_shape(web_server):
    with httpx.Client(base_url=web_server) as anonymous:
        assert_api_error(anonymous.post("/logout"), 401)


def test_a_changed_password_file_ends_every_session(web_lab, password_file):
    with own_server(web_lab.uri, password_file) as base, logged_in_client(base) as client:
        assert client.get("/api/host").status_code == 200
        password_file.write_text("a-new-password-123\n")
        assert_api_error(client.get("/api/host"), 401)
        with httpx.Client(base_url=base) as fresh:
            assert_api_error(fresh.post("/login", json={"password": WEB_PASSWORD}), 401, "password")
        with logged_in_client(base, "a-new-password-123") as again:
            assert again.get("/api/host").status_code == 200


def test_a_restart_of_serve_ends_every_session(web_lab, password_file):
    port = free_port()
    with own_server(web_lab.uri, password_file, port=port) as base, logged_in_client(base) as client:
        saved = dict(client.cookies)
    with own_server(web_lab.uri, password_file, port=port) as base:
        with httpx.Client(base_url=base, cookies=saved) as replay:
            assert_api_error(replay.get("/api/host"), 401)


def test_an_idle_session_expires(web_lab, password_file):
    with own_server(web_lab.uri, password_file, "--session-idle", "2") as base, logged_in_client(base) as client:
        assert client.get("/api/host").status_code == 200
        time.sleep(3)
        assert_api_error(client.get("/api/host"), 401)


def test_a_busy_session_still_ends_at_its_lifetime(web_lab, password_file):
    with own_server(web_lab.uri, password_file, "--session-idle", "60", "--session-max", "3") as base, \
            logged_in_client(base) as client:
        started = time.monotonic()
        while time.monotonic() - started < 2:
            assert client.get("/api/host").status_code == 200  # in use all the time: never idle
            time.sleep(0.5)
        time.sleep(1.5)
        assert_api_error(client.get("/api/host"), 401)


def test_the_event_stream_ends_with_its_session(web_server):
    """An open /api/events stream stops carrying the host's changes once its session is over."""
    with logged_in_client(web_server) as client:
        with client.stream("GET", "/api/events", params={"heartbeat": 0.5}) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            with httpx.Client(base_url=web_server, cookies=dict(client.cookies), headers=dict(client.headers)) as other:
                assert other.post("/logout").status_code == 200
            started = time.monotonic()
            for _ in lines:
                assert time.monotonic() - started < 10, "the stream went on after logout"
        # the stream closed by itself


# -- 3. CSRF: every state-changing request is checked for its origin and a session ---------------------
# A page on another port of the same host is the same site, so SameSite=strict does not help.
@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:1", "Content-Type": "text/plain"},
    {"Origin": "null", "Content-Type": "text/plain"},
    {"Referer": "http://127.0.0.1:1/attack.html", "Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "text/plain"},  # neither Origin nor Referer, and no token
    {TOKEN_HEADER: "forged", "Content-Type": "text/plain"},
], ids=["other-port-origin", "null-origin", "other-port-referer", "no-origin-no-token", "wrong-token"])
def test_a_forged_request_with_the_session_cookie_changes_nothing(web_server, api, conn, idle_network, headers):
    with httpx.Client(base_url=web_server, cookies=dict(api.cookies), headers=headers) as forger:
        before = host_state(conn)
        for method, path in [("POST", f"/api/networks/{idle_network}/actions/start"),
                             ("DELETE", f"/api/networks/{idle_network}"),
                             ("POST", "/api/networks"), ("PUT", "/api/networks"), ("PATCH", "/api/nosuch"),
                             ("POST", "/logout")]:
            body = "name=forged&subnet=10.67.0.0/24" if method != "DELETE" else None
            assert_api_error(forger.request(method, path, content=body), 403)
        assert host_state(conn) == before
        assert not conn.networkLookupByName(idle_network).isActive()
    assert api.get("/api/host").status_code == 200  # the real session goes on


def test_the_console_s_own_origin_or_its_token_is_accepted(web_server, api, conn, idle_network):
    cookies = dict(api.cookies)
    with httpx.Client(base_url=web_server, cookies=cookies, headers={"Origin": web_server}) as page:
        assert page.post(f"/api/networks/{idle_network}/actions/start").status_code == 200
    with httpx.Client(base_url=web_server, cookies=cookies, headers={"Referer": f"{web_server}/networks"}) as page:
        assert page.post(f"/api/networks/{idle_network}/actions/stop").status_code == 200
    assert not conn.networkLookupByName(idle_network).isActive()
    with httpx.Client(base_url=web_server, headers={"Origin": web_server}) as no_session:
        assert_api_error(no_session.post(f"/api/networks/{idle_network}/actions/start"), 401)
    assert not conn.networkLookupByName(idle_network).isActive()


def test_the_login_answers_the_token_and_pages_carry_it(web_server, api):
    token = api.headers[TOKEN_HEADER]
    assert len(token) >= 32
    page = api.get("/networks")
    assert page.status_code == 200
    assert f'<meta name="csrf-token" content="{token}">' in page.text


def test_a_login_from_another_site_is_refused(web_server):
    with httpx.Client(base_url=web_server, headers={"Origin": "http://127.0.0.1:1"}) as forger:
        assert_api_error(forger.post("/login", json={"password": WEB_PASSWORD}), 403)


# -- 4. REST bodies forbid unknown fields; validation answers in the core's one sentence --------------------
@pytest.mark.parametrize("path, body, field", [
    ("/api/networks", {"name": "typo", "subnet": "10.68.0.0/24", "mdoe": "isolated"}, "mdoe"),
    ("/api/pools/default/volumes", {"name": "typo", "capacity": "1M", "fromat": "qcow2"}, "fromat"),
    ("/api/pools", {"name": "typo", "type": "dir", "tagret": "/var/lib/libvirt/typo"}, "tagret"),
    ("/api/networks/default/edit", {"dhpc": False}, "dhpc"),
    ("/api/vms", {"name": "typo", "memory": "64M", "nics": [{"network": "default", "modle": "e1000"}]}, "nics.0.modle"),
    ("/api/vms", {"name": "typo", "memory": "64M", "new_disks": [{"pool": "default", "size": "1M", "fmt": "raw"}]},
     "new_disks.0.fmt"),
    ("/api/vms/none/disks", {"volume": "default/x", "readonly": True, "read_only": True}, "read_only"),
    ("/api/vms/none/nics", {"network": "default", "mac_address": "52:54:00:00:00:01"}, "mac_address"),
])
def test_unknown_fields_are_refused_naming_the_accepted_ones(api, conn, path, body, field):
    before = host_state(conn)
    sentence = assert_api_error(api.post(path, json=body), 422, field)
    assert sentence.startswith(f"{field}: unknown field; accepted fields are "), sentence
    accepted = sentence.split("accepted fields are ", 1)[1].rstrip(".").split(", ")
    assert field.split(".")[-1] not in accepted and len(accepted) >= 2
    assert host_state(conn) == before


def test_the_login_body_forbids_unknown_fields_too(web_server):
    with httpx.Client(base_url=web_server) as client:
        sentence = assert_api_error(client.post("/login", json={"password": WEB_PASSWORD, "user": "root"}), 422, "user")
        assert sentence == "user: unknown field; accepted fields are password."


def test_every_request_body_schema_forbids_unknown_fields(web_server):
    """The class, not the examples: every object a request body may hold, in the OpenAPI document."""
    doc = httpx.get(f"{web_server}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    seen: set[str] = set()

    def visit(schema: dict) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                visit(schemas[name])
            return
        if schema.get("type") == "object" or "properties" in schema:
            assert schema.get("additionalProperties") is False, f"{sorted(seen)[-1:]} allows unknown fields"
        for key in ("properties",):
            for sub in schema.get(key, {}).values():
                visit(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                visit(schema[key])
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                visit(sub)

    bodies = 0
    for path in doc["paths"].values():
        for operation in path.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                visit(media["schema"])
                bodies += 1
    assert bodies >= 8 and {"NetworkCreate", "VmCreate", "Login"} <= seen, seen


PYDANTIC_WORDS = re.compile(r"Input should|Field required|valid dictionary|JSON decode|Extra inputs|value_error|\.str\b|\.int\b")


@pytest.mark.parametrize("path, body, field", [
    ("/api/networks", {"name": "n", "mtu": "abc"}, "mtu"),
    ("/api/networks", {"subnet": "10.69.0.0/24"}, "name"),
    ("/api/networks", {"name": ["n"]}, "name"),
    ("/api/networks", ["not", "an", "object"], None),
    ("/api/pools/default/volumes", {"name": "v", "capacity": [1]}, "capacity"),
    ("/api/vms", {"name": "v", "memory": "64M", "vcpus": "many"}, "vcpus"),
    ("/api/vms", {"name": "v", "memory": "64M", "disks": [{"pool": "default"}]}, "disks.0.pool"),
    ("/api/networks/default/edit", {"mode": "tunnel"}, "mode"),
])
def test_malformed_bodies_get_one_sentence_not_pydantic_s_words(api, conn, path, body, field):
    before = host_state(conn)
    sentence = assert_api_error(api.post(path, json=body), 422, field)
    assert not PYDANTIC_WORDS.search(sentence), sentence
    assert sentence.startswith(f"{field or 'body'}: "), sentence
    assert host_state(conn) == before


@pytest.mark.parametrize("content, content_type", [
    ('{"name": ', "application/json"),
    ("name=x&subnet=10.0.0.0/24", "application/x-www-form-urlencoded"),
    (b"\xff\xfe{}", "application/json"),
])
def test_unreadable_bodies_get_one_sentence(api, content, content_type):
    sentence = assert_api_error(api.post("/api/networks", content=content, headers={"Content-Type": content_type}), 422)
    assert sentence.startswith("body: ") and not PYDANTIC_WORDS.search(sentence), sentence


def test_bad_query_and_path_values_get_one_sentence(api):
    sentence = assert_api_error(api.post("/api/networks/default/actions/explode"), 422, "action")
    assert "start" in sentence and "stop" in sentence and not PYDANTIC_WORDS.search(sentence), sentence
    sentence = assert_api_error(api.get("/api/networks/default/xml", params={"inactive": "maybe"}), 422, "inactive")
    assert not PYDANTIC_WORDS.search(sentence), sentence


# -- 9 (web). every route answers in the API's shape; odd route parameters are 4xx -----------------------
@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/nosuch", 404), ("GET", "/nosuch", 404), ("GET", "/api/pools/a/b/c/d", 404),
    ("GET", "/static/nosuch.js", 404), ("PUT", "/api/networks", 405), ("DELETE", "/api/host", 405),
])
def test_unknown_routes_answer_in_the_api_shape(api, method, path, status):
    assert_api_error(api.request(method, path), status)


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/networks/%00"), ("GET", "/api/networks/a%00b/xml"), ("GET", "/api/pools/%00/volumes"),
    ("GET", "/api/vms/%00"), ("GET", "/api/vms/%00/xml"), ("DELETE", "/api/networks/%00"),
    ("POST", "/api/networks/%00/actions/start"), ("GET", "/api/pools/default/volumes/%00/xml"),
    ("GET", "/api/networks/%0A%0D%09"), ("GET", "/api/networks/%ED%A0%80"), ("GET", "/api/networks/%FF%FE"),
    ("DELETE", "/api/vms/none/disks/%00"), ("DELETE", "/api/vms/none/nics/%00"),
    ("GET", "/api/networks/" + "n" * 5000),
])
def test_odd_route_parameters_get_4xx_and_one_sentence(api, conn, method, path):
    before = host_state(conn)
    response = api.request(method, path)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert_api_error(response, response.status_code, response.json().get("field"))
    assert host_state(conn) == before


def test_bodies_are_bounded(api, conn):
    """docs/security.md: a body of more than 4 MiB is refused, however it is sent."""
    before = host_state(conn)
    big = b"<network><name>big</name>" + b" " * (8 << 20) + b"</network>"
    headers = {"Content-Type": "application/xml"}
    assert_api_error(api.post("/api/networks/xml", content=big, headers=headers), 413)
    chunks = (big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20))  # chunked: no length told in advance
    assert_api_error(api.post("/api/networks/xml", content=chunks, headers=headers), 413)
    assert host_state(conn) == before


# -- 10. login throttling: per client and overall, with a lockout that ends ------------------------------
def _guess(base: str, password: str, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base, transport=transport, timeout=60) as client:
        return client.post("/login", json={"password": password})


def test_parallel_guesses_are_throttled_and_the_lockout_ends(web_lab, password_file):
    from virtops.web.auth import LOGIN_TRIES_PER_CLIENT

    with own_server(web_lab.uri, password_file, "--login-lockout", "4") as base:
        with ThreadPoolExecutor(60) as pool:
            answers = list(pool.map(lambda i: _guess(base, f"guess-{i}"), range(60)))
        tried = [a for a in answers if a.status_code == 401]
        refused = [a for a in answers if a.status_code == 429]
        assert len(tried) <= LOGIN_TRIES_PER_CLIENT and len(tried) + len(refused) == 60
        sentence = assert_api_error(refused[0], 429, "password")
        assert "try again in" in sentence and int(refused[0].headers["retry-after"]) >= 1
        locked = _guess(base, WEB_PASSWORD)  # the right password during the lockout tells nothing
        assert_api_error(locked, 429, "password")
        time.sleep(int(locked.headers["retry-after"]) + 0.5)
        assert _guess(base, WEB_PASSWORD).status_code == 200  # the operator is not locked out forever


def test_guesses_from_many_clients_meet_the_overall_limit(web_lab, password_file):
    from virtops.web.auth import LOGIN_TRIES_OVERALL, LOGIN_TRIES_PER_CLIENT

    clients = LOGIN_TRIES_OVERALL // LOGIN_TRIES_PER_CLIENT + 2
    with own_server(web_lab.uri, password_file, "--login-lockout", "4") as base:
        with ThreadPoolExecutor(clients * LOGIN_TRIES_PER_CLIENT) as pool:
            answers = list(pool.map(lambda i: _guess(base, f"guess-{i}", f"127.0.0.{2 + i % clients}"),
                                    range(clients * LOGIN_TRIES_PER_CLIENT)))
        assert sum(a.status_code == 401 for a in answers) <= LOGIN_TRIES_OVERALL
        fresh = _guess(base, WEB_PASSWORD, "127.0.0.200")  # a client that never guessed
        assert_api_error(fresh, 429, "password")
        time.sleep(int(fresh.headers["retry-after"]) + 0.5)
        assert _guess(base, WEB_PASSWORD, "127.0.0.200").status_code == 200


# -- 11. headers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/login", "/overview", "/vms", "/api/host", "/static/app.js", "/api/nosuch", "/openapi.json"])
def test_every_answer_carries_the_security_headers(api, path):
    headers = api.get(path).headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";") if part.strip())
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'", policy
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("page", ["login", "overview", "pools", "networks", "vms"])
def test_pages_hold_no_inline_script(api, page):
    from lxml import html

    root = html.fromstring(api.get(f"/{page}").content)
    for script in root.iter("script"):
        assert script.get("src") and not (script.text or "").strip(), html.tostring(script)
    handlers = [(el.tag, name) for el in root.iter() for name in el.attrib if name.lower().startswith("on")]
    assert handlers == []
    assert not [el for el in root.iter() if el.get("href", "").lower().startswith("javascript:")]


# -- 1 (server side). the login page keeps `next` on this site -------------------------------------------
@pytest.mark.parametrize("target, kept", [
    ("/networks", "/networks"), ("/vms", "/vms"), ("/hosts/lab:web1/vms", "/hosts/lab:web1/vms"),
    ("javascript:fetch('/api/host')", "/"), ("//evil.example/", "/"), ("http://evil.example/", "/"),
    ("https://evil.example/x", "/"), ("/\\evil.example", "/"), ("\\\\evil.example", "/"), ("/%2F/evil.example", "/"),
    ("JaVaScRiPt:alert(1)", "/"), (" /networks", "/"), ("/networks\nx", "/"), ("", "/"),
])
def test_the_login_page_keeps_next_on_this_site(web_server, target, kept):
    with httpx.Client(base_url=web_server) as anonymous:
        page = anonymous.get("/login", params={"next": target})
        assert page.status_code == 200
        assert re.search(r'<body data-page="login" data-next="([^"]*)"', page.text).group(1) == kept
