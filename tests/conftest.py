"""Fixtures: real lab hosts (a private libvirtd in namespaces) and libvirt's test driver for unit tests.

Lab-host tests carry the `lab` marker. When lab hosts cannot run here (not root, no libvirtd)
they are skipped locally, but with VIRTOPS_REQUIRE_LAB=1 (set by CI) that is a failure instead.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run, so a landing never depends on luck; local runs
# keep hypothesis' randomness, which is how new bugs are found. No deadline in CI: an example's time
# on a loaded two-core machine says nothing about correctness (timings belong in bench/), and a slow
# example then fast on its replay fails as "Flaky" (test_pieces_regroup_into_aligned_blocks did so once).
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

from virtops.host import Host
from tests.helpers import fresh_lab

SESSION_LAB = f"pytest-{os.getpid() % 100000}"
UPLINK_LAB = f"pytest-up-{os.getpid() % 100000}"


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab hosts need root (network and mount namespaces)"
    for tool in ("libvirtd", "virtlogd", "qemu-system-x86_64", "nsenter", "unshare", "ip"):
        if not shutil.which(tool):
            return f"lab hosts need {tool}; run the README's setup command"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "lab" in str(item.fspath.dirname).split(os.sep)[-1:]:
            item.add_marker(pytest.mark.lab)


def pytest_runtest_setup(item):
    if item.get_closest_marker("lab") is None:
        return
    reason = lab_unavailable_reason()
    if reason:
        if os.environ.get("VIRTOPS_REQUIRE_LAB") == "1":
            pytest.fail(f"lab-host test cannot run: {reason} (VIRTOPS_REQUIRE_LAB=1)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab():
    """A running lab host shared by the tests that can share one; always torn down."""
    lab = fresh_lab(SESSION_LAB)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def uplink_lab():
    """A lab host with an uplink into an 'outside' namespace, for tests with real packets."""
    lab = fresh_lab(UPLINK_LAB, uplink=True)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def host(lab):
    host = Host(lab.uri)
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory):
    from virtops.testguest.image import build_guest_image

    return build_guest_image()


@pytest.fixture
def test_host(tmp_path: Path):
    """A private instance of libvirt's test driver: fast, in-process, fresh for every test."""
    node = tmp_path / "testnode.xml"
    node.write_text("<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>"
                    "<mhz>2000</mhz></cpu><memory>8388608</memory></node>")
    host = Host(f"test://{node}")
    try:
        yield host
    finally:
        host.close()


@pytest.fixture
def bare_test_host(test_host):
    """The test driver's host without the running 'test' VM it starts with."""
    for dom in test_host.conn.listAllDomains():
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    return test_host


WEB_PASSWORD = "lab-web-password"


@pytest.fixture(scope="session")
def web_lab():
    """A lab host of its own for the web console's tests: they make the handbook's objects. Its
    uplink leads to the outside namespace where the handbook's NFS server can run."""
    lab = fresh_lab(f"pytest-web-{os.getpid() % 100000}", uplink=True)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, for the web console's browser tests (one a module)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for the browser tests; run the README's setup command")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def web_server(web_lab, tmp_path_factory):
    """`virtops serve` as a real process on a free loopback port; yields its base URL."""
    from tests.helpers import serve_process

    password_file = tmp_path_factory.mktemp("web") / "password"
    password_file.write_text(WEB_PASSWORD + "\n")
    with serve_process(web_lab.uri, password_file) as base:
        yield base


@pytest.fixture(scope="module")
def web_conn(web_lab):
    """libvirt on the web console's lab host, for what a browser test sets up and checks (its XML)."""
    import libvirt

    conn = libvirt.open(web_lab.uri)
    yield conn
    conn.close()


def logged_in(browser, base_url: str, start: str = "/networks", **context_options):
    """A page of its own browser context, logged in on `virtops serve` at base_url and shown at
    START with its event stream open. page.errors collects what no page of the context may report:
    a JavaScript error or a Content-Security-Policy refusal (the pages run under a strict policy)."""
    context = browser.new_context(base_url=base_url, **context_options)
    errors: list[str] = []

    def watch(page):
        if getattr(page, "errors", None) is errors:
            return
        page.errors = errors
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None)

    context.on("page", watch)  # pages the tests open later too
    page = context.new_page()
    watch(page)
    page.goto(f"/login?next={start}")
    page.fill("input[name=password]", WEB_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{start}")
    page.wait_for_selector("#live[data-state=live]")
    return page


@pytest.fixture(scope="module")
def web_base(web_server):
    """The `virtops serve` the browser tests' page logs in on: the web lab's (a module with a lab
    and server of its own overrides this)."""
    return web_server


@pytest.fixture
def page(browser, web_base, request):
    """A logged-in page, at the test module's WEB_START (default /networks); at its end, no page of
    its context may have reported an error (logged_in)."""
    page = logged_in(browser, web_base, getattr(request.module, "WEB_START", "/networks"))
    yield page
    page.context.close()
    assert page.errors == []
