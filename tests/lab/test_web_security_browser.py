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

from tests.conftest import WEB_PASSWORD, logged_in, web_conn
from tests.lab.test_web_security import logged_in_client


conn = web_conn  # libvirt on the web lab; the logged-in `page` is conftest's too (at WEB_START, /networks)


def log_in(context, target: str):
    """The login form sent with next=TARGET, whatever that is: where the page goes is the test."""
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
def test_the_login_page_never_leaves_this_site(browser, web_base, target):
    context = browser.new_context(base_url=web_base)
    try:
        page = log_in(context, target)
        page.wait_for_url(f"{web_base}/overview", timeout=8_000)  # "/" redirects to the Host page
        assert page.locator("body[data-pwned]").count() == 0
    finally:
        context.close()


def test_the_login_page_goes_to_the_page_asked_for(browser, web_base):
    page = logged_in(browser, web_base, "/vms")  # conftest's: it waits for /vms and its event stream
    page.context.close()
    assert page.errors == []


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
def idle_network(web_base, conn):
    name = "csrf-browser"
    with logged_in_client(web_base) as api:
        made = api.post("/api/networks", json={"name": name, "subnet": "10.65.0.0/24", "mode": "isolated",
                                               "start": False, "autostart": False})
        assert made.status_code == 201, made.text
    yield name
    with contextlib.suppress(libvirt.libvirtError):
        net = conn.networkLookupByName(name)
        if net.isActive():
            net.destroy()
        net.undefine()


def test_a_text_plain_form_on_another_port_cannot_start_a_network(page, web_base, conn, idle_network):
    form = (f'<form method="POST" enctype="text/plain" action="{web_base}/api/networks/{idle_network}/actions/start">'
            '<input name="x" value="y"><button id="go">go</button></form>')
    with other_port_site(form) as attacker:  # `page` is the victim, logged in
        other = page.context.new_page()
        other.goto(attacker)
        with other.expect_navigation():
            other.click("#go")
        assert '"error"' in other.content()  # the console's refusal, not the network's state
    assert not conn.networkLookupByName(idle_network).isActive()


def test_another_page_cannot_frame_the_console(page, web_base):
    with other_port_site(f'<iframe id="console" src="{web_base}/overview"></iframe>') as attacker:
        other = page.context.new_page()  # in the logged-in context
        other.goto(attacker)
        other.wait_for_load_state("load")  # the frames' too
        framed = [frame for frame in other.frames if frame.url.startswith(web_base)]
        assert not any(frame.locator("body[data-page=overview]").count() for frame in framed)
    # Chromium says why: the console's Content-Security-Policy (frame-ancestors 'none'). That refusal
    # is this test's point; any other one still fails conftest's page.
    refusals = [error for error in page.errors if "frame-ancestors" in error]
    assert refusals, page.errors
    page.errors[:] = [error for error in page.errors if error not in refusals]
