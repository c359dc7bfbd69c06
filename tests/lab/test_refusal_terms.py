"""Refusals in the core's own terms, worded per face, on a real libvirtd (issue 10, point 5): the
same mistake through the CLI (its options: --format qcow2, --force, --disk #1), the REST API (its
fields: "format": "qcow2", "force": true, disks[0].target) and a spec's plan (its keys, at their
place in the file), each leaving the host exactly as it was."""
from __future__ import annotations

import textwrap

import libvirt
import pytest

from tests.helpers import delete_objects, dir_pool_element, host_state, run_cli, volume_element
from virtops.host import Host
from virtops.ops.domain import DomainSpec, KernelBoot, NicSpec
from virtops.xmlmodels import doc as X

MiB = 1024**2
POOL, NET, VM = "termpool", "termnet", "termvm"


@pytest.fixture(scope="module")
def terms(lab):
    """A pool with a raw volume and a network a defined VM uses."""
    conn = libvirt.open(lab.uri)
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(POOL)), 0)
    pool.build(0)
    pool.create(0)
    pool.createXML(X.to_string(volume_element("base.raw", 16 * MiB, "raw")), 0)
    net = conn.networkDefineXML(f"<network><name>{NET}</name><ip address='10.78.0.1' prefix='24'/></network>")
    net.create()
    conn.defineXML(DomainSpec(name=VM, boot=KernelBoot(kernel="/boot/vmlinuz"),
                              nics=[NicSpec(network=NET, mac="52:54:00:78:00:01")]).to_xml())
    try:
        yield lab, conn
    finally:
        delete_objects([conn.lookupByName(VM)], [net], [pool])
        conn.close()


@pytest.fixture(scope="module")
def api(terms, tmp_path_factory):
    """The REST API in this process on its own connection to the lab host, logged in as a script is."""
    from starlette.testclient import TestClient

    from virtops.web.app import create_app

    lab, _conn = terms
    with TestClient(create_app(Host(lab.uri), "password"), base_url="http://127.0.0.1") as client:
        login = client.post("/login", json={"password": "password"})
        assert login.status_code == 200
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield client


def cli_refusal(terms, *args: str) -> list[str]:
    """The CLI's error lines of a refused command, which changed nothing."""
    lab, conn = terms
    before = host_state(conn)
    result = run_cli(*args, uri=lab.uri)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert host_state(conn) == before, args
    return [line for line in result.stderr.splitlines() if not line.startswith("host: ")]


def api_refusal(terms, api, method: str, path: str, status: int, body: dict | None = None) -> dict:
    _lab, conn = terms
    before = host_state(conn)
    answer = api.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert host_state(conn) == before, path
    return answer.json()


def plan_refusal(terms, tmp_path, text: str) -> list[str]:
    spec = tmp_path / "host.yaml"
    spec.write_text(textwrap.dedent(text))
    return [line.removeprefix(f"error: {spec}:") for line in cli_refusal(terms, "plan", "-f", str(spec))]


def test_a_value_with_its_way_out_in_every_face(terms, api, tmp_path):
    assert cli_refusal(terms, "vol", "create", POOL, "v", "1M", "--backing", f"{POOL}/base.raw", "--format", "raw") == [
        "error: --backing: a volume with a backing volume must be qcow2; give --format qcow2."]
    assert api_refusal(terms, api, "POST", f"/api/pools/{POOL}/volumes", 422,
                       {"name": "v", "capacity": "1M", "format": "raw", "backing": f"{POOL}/base.raw"}) == {
        "error": 'backing: a volume with a backing volume must be qcow2; give "format": "qcow2".', "field": "backing"}
    # A network's device: the CLI's --dev, the body's dev, the spec's dev at its line.
    assert cli_refusal(terms, "net", "create", "t-dev", "--mode", "isolated", "--dev", "lo", "--subnet", "10.79.0.0/24") \
        == ["error: --dev: mode isolated does not forward through a device; use --dev only with nat or route."]
    assert api_refusal(terms, api, "POST", "/api/networks", 422,
                       {"name": "t-dev", "mode": "isolated", "dev": "lo", "subnet": "10.79.0.0/24"}) == {
        "error": "dev: mode isolated does not forward through a device; use dev only with nat or route.", "field": "dev"}
    assert plan_refusal(terms, tmp_path, """\
        networks:
        - name: t-dev
          mode: isolated
          dev: lo
          subnet: 10.79.0.0/24
        """) == ["4: networks[0].dev: mode isolated does not forward through a device; use dev only with nat or route."]


def test_a_refusal_whose_way_out_is_an_option_in_every_face(terms, api):
    """The CLI names its flags; the REST API its fields, and answers the option the console offers."""
    (deleting,) = cli_refusal(terms, "net", "delete", NET)
    assert deleting.startswith(f"error: network: {NET} is used by ") and "give --force to go ahead anyway." in deleting
    answer = api_refusal(terms, api, "DELETE", f"/api/networks/{NET}", 409)
    assert (answer["field"], answer["option"]) == ("force", "force")
    assert 'give "force": true to go ahead anyway.' in answer["error"] and "--" not in answer["error"]
    assert cli_refusal(terms, "pool", "delete", POOL) == [
        f"error: pool: pool {POOL} holds 1 volume(s); give --with-volumes to delete them with the pool, or "
        "--keep-data to only undefine it."]
    assert api_refusal(terms, api, "DELETE", f"/api/pools/{POOL}", 409) == {
        "error": f'pool: pool {POOL} holds 1 volume(s); give "with_volumes": true to delete them with the pool, or '
                 '"keep_data": true to only undefine it.', "field": "pool", "option": "with_volumes",
        "ways": [{"option": "with_volumes", "value": True, "does": "delete the volumes too"},
                 {"option": "keep_data", "value": True, "does": "keep the data, remove only the pool definition"}]}


def test_a_refusal_of_a_part_of_the_request_at_its_place_in_every_face(terms, api, tmp_path):
    assert cli_refusal(terms, "vm", "create", "t-vm", "--memory", "64M",
                       "--disk", f"{POOL}/base.raw,target=vdb,bus=scsi") == [
        "error: --disk #1: 'vdb' is not a scsi disk name; give one such as sdb."]
    assert api_refusal(terms, api, "POST", "/api/vms", 422, {
        "name": "t-vm", "memory": "64M", "disks": [{"volume": f"{POOL}/base.raw", "target": "vdb", "bus": "scsi"}]}) == {
        "error": "target: 'vdb' is not a scsi disk name; give one such as sdb.", "field": "disks[0].target"}
    assert plan_refusal(terms, tmp_path, f"""\
        vms:
        - name: t-vm
          memory: 64M
          disks:
          - volume: {POOL}/base.raw
            target: vdb
            bus: scsi
        """) == ["6: vms[0].disks[0].target: 'vdb' is not a scsi disk name; give one such as sdb."]


def test_a_hint_to_run_a_command_is_the_command_lines_alone(terms, api):
    assert cli_refusal(terms, "pool", "info", "t-nothing") == [
        "error: pool: no storage pool named 't-nothing' on this host; `virtops pool list --all` lists them."]
    assert api_refusal(terms, api, "GET", "/api/pools/t-nothing", 404) == {
        "error": "pool: no storage pool named 't-nothing' on this host.", "field": None}
