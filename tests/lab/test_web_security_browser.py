"""The console's defences in a real Chromium (Debian's, driven by Playwright): the login page goes
only to paths of this server, a page on another port of the same host can neither start a
network with a text/plain form nor frame the console."""
from __future__ import annotations

import contextlib
import http.server
import threading
from urllib.parse import quote

import libvirt
import pytest

from tests.conftest import WEB_PASSWORD
from tests.lab.test_web_security import logged_in_client


@pytest.fixture(scope="module")
def conn(web_lab):
    conn = libvirt.open(web_lab.uri)
    yield conn
    conn.close()


def log_in(context, target: str):
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"/login?next={quote(target, safe='')}")
    page.fill("input[name=password]", WEB_PASSWORD)
    page.click("button[type=submit]")
    return page


@pytest.mark.parametrize("target", [
    "javascript:document.body.dataset.pwned='yes'", "JavaScript:document.body.dataset.pwned='yes'",
    "//evil.example/", "http://evil.example/", "/\\evil.example", "\\\\evil.example", "/%2F/evil.example",
    "data:text/html,<p>pwned</p>", " javascript:document.body.dataset.pwned='yes'",
])
def test_the_login_page_never_leaves_this_site(browser, web_server, target):
    context = browser.new_context(base_url=web_server)
    try:
        page = log_in(context, target)
        page.wait_for_url(f"{web_server}/overview", timeout=8_000)  # "/" redirects to the Host page
        assert page.locator("body[data-pwned]").count() == 0
    finally:
        context.close()


def test_the_login_page_goes_to_the_page_asked_for(browser, web_server):
    context = browser.new_context(base_url=web_server)
    try:
        log_in(context, "/vms").wait_for_url(f"{web_server}/vms")
    finally:
        context.close()


@contextlib.contextmanager
def other_port_site(html: str):
    """A web server on another port of 127.0.0.1: the same site as the console, another origin."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def idle_network(web_server, conn):
    name = "csrf-browser"
    with logged_in_client(web_server) as api:
        made = api.post("/api/networks", json={"name": name, "subnet": "10.65.0.0/24", "mode": "isolated",
                                               "start": False, "autostart": False})
        assert made.status_code == 201, made.text
    yield name
    with contextlib.suppress(libvirt.libvirtError):
        net = conn.networkLookupByName(name)
        if net.isActive():
            net.destroy()
        net.undefine()


def test_a_text_plain_form_on_another_port_cannot_start_a_network(browser, web_server, conn, idle_network):
    form = (f'<form method="POST" enctype="text/plain" action="{web_server}/api/networks/{idle_network}/actions/start">'
            '<input name="x" value="y"><button id="go">go</button></form>')
    context = browser.new_context(base_url=web_server)
    try:
        log_in(context, "/networks").wait_for_url(f"{web_server}/networks")  # the victim is logged in
        with other_port_site(form) as attacker:
            page = context.new_page()
            page.goto(attacker)
            with page.expect_navigation():
                page.click("#go")
            assert '"error"' in page.content()  # the console's refusal, not the network's state
        assert not conn.networkLookupByName(idle_network).isActive()
    finally:
        context.close()


def test_another_page_cannot_frame_the_console(browser, web_server):
    context = browser.new_context(base_url=web_server)
    try:
        log_in(context, "/overview").wait_for_url(f"{web_server}/overview")
        with other_port_site(f'<iframe id="console" src="{web_server}/overview"></iframe>') as attacker:
            page = context.new_page()
            page.goto(attacker)
            page.wait_for_load_state("load")  # the frames' too
            framed = [frame for frame in page.frames if frame.url.startswith(web_server)]
            assert not any(frame.locator("body[data-page=overview]").count() for frame in framed)
    finally:
        context.close()
