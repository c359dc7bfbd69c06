"""Storage pools on a real libvirtd: the handbook's pools, one-step create that undoes itself,
every refusal leaving the host exactly as it was, and the CLI including virsh's names."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.helpers import host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.base.errors import InvalidInput, NotFound, VirtopsError
from virtops.ops.pool import PoolSpec

TEST_TARGET = "/var/lib/libvirt/test"
NFS_TARGET = "/var/lib/libvirt/nfs"


def stable_state(conn) -> dict[str, str]:
    """host_state without the pools' size figures, which move whenever anything on the disk changes."""
    return {key: re.sub(r"<(capacity|allocation|available) unit='bytes'>\d+<", r"<\1 unit='bytes'>-<", xml)
            for key, xml in host_state(conn).items()}


@pytest.fixture
def clean(host):
    """Whatever pools and domains a test leaves are removed, so tests do not depend on one another."""
    before_pools = {p.name() for p in host.conn.listAllStoragePools(0)}
    yield host
    for dom in host.conn.listAllDomains(0):
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    for pool in host.conn.listAllStoragePools(0):
        if pool.name() in before_pools:
            continue
        if pool.isActive():
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
        try:
            pool.delete(0)
        except Exception:
            pass
        if pool.isPersistent():
            pool.undefine()


def cli(lab, *args):
    return run_cli(*args, uri=lab.uri)


def on_disk(lab, target: str):
    """The lab's /var/lib/libvirt is its state dir's lib/, seen from outside the lab."""
    return lab.state_dir / "lib" / target.removeprefix("/var/lib/libvirt/")


def define_vm_using(host, name: str, **disk) -> None:
    spec = DomainSpec(name=name, disks=[DiskSpec(target="vdb", **disk)])
    host.conn.defineXML(spec.to_xml())


# -- the handbook: pool `test` ----------------------------------------------------------------
def test_handbook_dir_pool_in_one_step(lab, clean):
    result = cli(lab, "pool", "create", "test", "--type", "dir", "--target", TEST_TARGET,
                 "--owner", "root", "--group", "root", "--mode", "0700")
    assert result.returncode == 0, result.stderr
    assert "defined, built, started, autostart" in result.stdout
    directory = on_disk(lab, TEST_TARGET)
    st = directory.stat()
    assert oct(st.st_mode & 0o7777) == "0o700" and st.st_uid == 0 and st.st_gid == 0
    pool = clean.conn.storagePoolLookupByName("test")
    assert pool.isActive() and pool.autostart() and pool.isPersistent()
    root = X.parse(pool.XMLDesc(0))
    X.validate(root, "storagepool")
    assert root.get("type") == "dir"
    assert root.findtext("target/path") == TEST_TARGET
    assert root.findtext("target/permissions/mode") == "0700"
    assert root.findtext("target/permissions/owner") == "0"
    assert root.findtext("target/permissions/group") == "0"
    # virsh sees an ordinary libvirt pool
    virsh = subprocess.run(["virsh", "-c", lab.uri, "pool-info", "test"], capture_output=True, text=True)
    assert re.search(r"State:\s+running", virsh.stdout) and re.search(r"Autostart:\s+yes", virsh.stdout)


def test_list_info_and_json(lab, clean):
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET, "--mode", "0700").returncode == 0
    assert cli(lab, "pool", "create", "idle", "--target", "/var/lib/libvirt/idle", "--no-start", "--no-autostart").returncode == 0
    listed = json.loads(cli(lab, "pool", "list", "--json").stdout)
    assert [p["name"] for p in listed] == ["test"]
    every = {p["name"]: p for p in json.loads(cli(lab, "pool", "list", "--all", "--json").stdout)}
    assert set(every) == {"test", "idle"}
    for key in ("name", "type", "state", "autostart", "persistent", "capacity", "allocation", "available", "target"):
        assert key in every["test"]
    assert every["test"]["state"] == "running" and every["test"]["capacity"] > 0
    assert every["idle"]["state"] == "inactive" and every["idle"]["autostart"] is False
    table = cli(lab, "pool", "list", "--all").stdout
    assert "idle" in table and "inactive" in table and TEST_TARGET in table
    info = json.loads(cli(lab, "pool", "info", "test", "--json").stdout)
    assert info["mode"] == "0700" and info["volumes"] == 0
    assert "Target:" in cli(lab, "pool", "info", "test").stdout
    # virsh's name
    assert "test" in cli(lab, "pool-list").stdout


def test_lifecycle_start_stop_refresh_autostart(lab, clean):
    conn = clean.conn
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    pool = conn.storagePoolLookupByName("test")
    assert cli(lab, "pool", "stop", "test").returncode == 0 and not pool.isActive()
    stopped_again = cli(lab, "pool", "stop", "test")
    assert stopped_again.returncode == 1 and "not running" in stopped_again.stderr
    assert cli(lab, "pool-start", "test").returncode == 0 and pool.isActive()
    (on_disk(lab, TEST_TARGET) / "dropped-in.img").write_bytes(b"\0" * 4096)
    assert cli(lab, "pool", "refresh", "test").returncode == 0
    assert [v.name() for v in pool.listAllVolumes(0)] == ["dropped-in.img"]
    assert cli(lab, "pool", "autostart", "test", "--disable").returncode == 0 and not pool.autostart()
    assert cli(lab, "pool-autostart", "test").returncode == 0 and pool.autostart()


def test_dumpxml_to_stdout_and_file_is_restorable(lab, clean, tmp_path):
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET, "--mode", "0700").returncode == 0
    text = cli(lab, "pool", "dumpxml", "test").stdout
    X.validate(X.parse(text), "storagepool")
    out = tmp_path / "test_pool.xml"
    assert cli(lab, "pool-dumpxml", "test", "-o", str(out)).returncode == 0
    saved = X.parse(out.read_text())
    assert saved.findtext("name") == "test" and saved.findtext("target/path") == TEST_TARGET


def test_define_as_build_undefine_for_virsh_parity(lab, clean):
    conn = clean.conn
    assert cli(lab, "pool-define-as", "test", "--type", "dir", "--target", TEST_TARGET, "--mode", "0750").returncode == 0
    pool = conn.storagePoolLookupByName("test")
    assert not pool.isActive() and not on_disk(lab, TEST_TARGET).exists()
    assert cli(lab, "pool-build", "test").returncode == 0
    assert oct(on_disk(lab, TEST_TARGET).stat().st_mode & 0o777) == "0o750"
    assert cli(lab, "pool", "undefine", "test").returncode == 0
    assert "test" not in [p.name() for p in conn.listAllStoragePools(0)]
    on_disk(lab, TEST_TARGET).rmdir()


# -- refusals: one sentence naming the field, exit 1, nothing changed --------------------------
REFUSALS = [
    (["test", "--target", TEST_TARGET], "name", "already exists"),
    (["other", "--target", "relative/path"], "--target", "not an absolute path"),
    (["other", "--target", "/"], "--target", "system directory"),
    (["other", "--target", "/etc"], "--target", "system directory"),
    (["other", "--target", "/usr"], "--target", "system directory"),
    (["other", "--target", "/boot"], "--target", "system directory"),
    (["other", "--target", "/var/lib/libvirt"], "--target", "system directory"),
    (["other", "--target", "/etc/libvirt/x"], "--target", "system directory"),
    (["other", "--target", "/var/lib/../../etc"], "--target", "system directory"),
    (["other", "--target", TEST_TARGET + "/"], "--target", "already the target of pool 'test'"),
    (["other", "--target", TEST_TARGET + "/inner"], "--target", "overlaps"),
    (["other", "--type", "netfs", "--target", NFS_TARGET], "--host", "needs --host"),
    (["other", "--type", "netfs", "--host", "192.168.0.254", "--target", NFS_TARGET], "--source-path", "needs --source-path"),
    (["other", "--type", "fs", "--target", "/var/lib/libvirt/fs"], "--device", "needs --device"),
    (["other", "--type", "dir"], "--target", "needs --target"),
    (["other", "--target", "/var/lib/libvirt/o", "--host", "h"], "--host", "applies only to netfs"),
    (["other", "--target", "/var/lib/libvirt/o", "--mode", "0800"], "--mode", "not an octal mode"),
    (["other", "--target", "/var/lib/libvirt/o", "--mode", "rwx"], "--mode", "not an octal mode"),
    (["other", "--target", "/var/lib/libvirt/o", "--owner", "no-such-user"], "--owner", "no user named"),
    (["other", "--target", "/var/lib/libvirt/o", "--group", "no-such-group"], "--group", "no group named"),
    (["other", "--type", "netfs", "--host", "192.168.0.254", "--source-path", "/nfs", "--target", NFS_TARGET,
      "--format", "ntfs"], "--format", "not a network file system"),
    (["bad/name", "--target", "/var/lib/libvirt/o"], "name", "not accepted"),
]


@pytest.fixture
def with_test_pool(lab, clean):
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    return clean


@pytest.mark.parametrize("args, field, words", REFUSALS, ids=[" ".join(r[0][1:]) or r[0][0] for r in REFUSALS])
def test_create_refusals_change_nothing(lab, with_test_pool, args, field, words):
    before = stable_state(with_test_pool.conn)
    result = cli(lab, "pool", "create", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith(f"error: {field}: ") and words in message
    assert len(message.splitlines()) == 1
    assert stable_state(with_test_pool.conn) == before
    assert not on_disk(lab, "/var/lib/libvirt/o").exists()


def test_usage_error_is_exit_2(lab, clean):
    assert cli(lab, "pool", "create", "x", "--type", "zfs", "--target", "/var/lib/libvirt/x").returncode == 2


def test_core_refusals_raise_invalid_input(host, clean):
    with pytest.raises(InvalidInput) as err:
        host.pools.create(PoolSpec(name="x", target="/proc/x"))
    assert err.value.field == "target"
    with pytest.raises(NotFound):
        host.pools.info("nope")


# -- undo on failure ----------------------------------------------------------------------------
def test_failed_build_leaves_nothing_defined(lab, clean):
    blocker = on_disk(lab, "/var/lib/libvirt/afile")
    blocker.write_text("not a directory")
    try:
        before = stable_state(clean.conn)
        result = cli(lab, "pool", "create", "broken", "--target", "/var/lib/libvirt/afile/sub")
        assert result.returncode == 1 and "building pool broken" in result.stderr
        assert stable_state(clean.conn) == before
    finally:
        blocker.unlink()


def test_failed_start_removes_the_directory_it_created(lab, clean):
    before = stable_state(clean.conn)
    result = cli(lab, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254",
                 "--source-path", "/nfs", "--target", NFS_TARGET)
    assert result.returncode == 1
    assert "starting pool nfs failed" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert stable_state(clean.conn) == before
    assert not on_disk(lab, NFS_TARGET).exists()


def test_failed_start_keeps_a_directory_that_was_there(lab, clean):
    existing = on_disk(lab, NFS_TARGET)
    existing.mkdir()
    (existing / "keep").write_text("mine")
    try:
        result = cli(lab, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254",
                     "--source-path", "/nfs", "--target", NFS_TARGET)
        assert result.returncode == 1
        assert (existing / "keep").read_text() == "mine"
        assert "nfs" not in [p.name() for p in clean.conn.listAllStoragePools(0)]
    finally:
        (existing / "keep").unlink()
        existing.rmdir()


# -- the handbook: NFS pool `nfs` (this kernel has no NFS client) ---------------------------------
def test_netfs_pool_xml_and_a_start_that_fails_clearly(lab, clean):
    result = cli(lab, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254", "--source-path", "/nfs",
                 "--target", NFS_TARGET, "--format", "nfs", "--no-start", "--no-autostart")
    assert result.returncode == 0, result.stderr
    pool = clean.conn.storagePoolLookupByName("nfs")
    root = X.parse(pool.XMLDesc(0))
    X.validate(root, "storagepool")
    assert root.get("type") == "netfs"
    assert root.find("source/host").get("name") == "192.168.0.254"
    assert root.find("source/dir").get("path") == "/nfs"
    assert root.find("source/format").get("type") == "nfs"
    assert root.findtext("target/path") == NFS_TARGET
    before = stable_state(clean.conn)
    started = cli(lab, "pool", "start", "nfs")
    assert started.returncode == 1
    message = started.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "mounting 192.168.0.254:/nfs on /var/lib/libvirt/nfs failed" in message
    assert "stays defined and inactive" in message
    assert pool.isPersistent() and not pool.isActive()
    assert stable_state(clean.conn) == before


def test_netfs_format_defaults_to_auto(host, clean):
    spec = PoolSpec(name="nfs", type="netfs", host="192.168.0.254", source_path="/nfs", target=NFS_TARGET)
    info = host.pools.define(spec)
    assert info.source_format == "auto" and info.source_host == "192.168.0.254" and not info.active


# -- delete ---------------------------------------------------------------------------------------
def test_delete_refuses_while_a_vm_uses_a_volume(lab, clean):
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    pool = clean.conn.storagePoolLookupByName("test")
    pool.createXML("<volume><name>disk</name><capacity>1048576</capacity></volume>", 0)
    for vm, disk in (("by-path", {"path": f"{TEST_TARGET}/disk"}), ("by-volume", {"pool": "test", "volume": "disk"})):
        define_vm_using(clean, vm, **disk)
        before = stable_state(clean.conn)
        result = cli(lab, "pool", "delete", "test", "--with-volumes")
        assert result.returncode == 1 and f"VM(s) {vm}" in result.stderr
        assert stable_state(clean.conn) == before
        clean.conn.lookupByName(vm).undefine()


def test_delete_variants(lab, clean):
    conn = clean.conn
    # an empty pool: stopped, directory removed, undefined
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    result = cli(lab, "pool", "delete", "test")
    assert result.returncode == 0, result.stderr
    assert not on_disk(lab, TEST_TARGET).exists() and not conn.listAllStoragePools(0)
    # a pool with volumes needs a choice
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    conn.storagePoolLookupByName("test").createXML("<volume><name>v</name><capacity>4096</capacity></volume>", 0)
    before = stable_state(conn)
    refused = cli(lab, "pool", "delete", "test")
    assert refused.returncode == 1 and "--with-volumes" in refused.stderr and stable_state(conn) == before
    # --keep-data: only undefined, the data stays
    assert cli(lab, "pool", "delete", "test", "--keep-data").returncode == 0
    assert (on_disk(lab, TEST_TARGET) / "v").exists() and not conn.listAllStoragePools(0)
    # define it again over the same directory, then delete everything
    assert cli(lab, "pool", "create", "test", "--target", TEST_TARGET).returncode == 0
    assert cli(lab, "pool-delete", "test", "--with-volumes").returncode == 0
    assert not on_disk(lab, TEST_TARGET).exists() and not conn.listAllStoragePools(0)


def test_delete_unknown_pool(lab, clean):
    result = cli(lab, "pool", "delete", "nope")
    assert result.returncode == 1 and "no storage pool named 'nope'" in result.stderr


def test_pool_create_json(lab, clean):
    result = cli(lab, "pool", "create", "test", "--target", TEST_TARGET, "--json")
    data = json.loads(result.stdout)
    assert data["pool"]["name"] == "test" and data["steps"] == ["defined", "built", "started", "autostart"]


def test_start_of_a_running_pool_is_refused(host, clean):
    host.pools.create(PoolSpec(name="test", target=TEST_TARGET))
    with pytest.raises(VirtopsError, match="already running"):
        host.pools.start("test")


def test_netfs_create_whose_start_fails_keeps_nothing(lab, clean):
    before = stable_state(clean.conn)
    result = cli(lab, "pool", "create", "nfs", "--type", "netfs", "--host", "192.168.0.254", "--source-path", "/nfs",
                 "--target", NFS_TARGET, "--format", "nfs")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "mounting 192.168.0.254:/nfs on /var/lib/libvirt/nfs failed" in message
    assert "use --no-start to define it anyway; nothing was kept (undone: " in message
    assert "defined pool nfs" in message
    assert stable_state(clean.conn) == before


def test_a_probe_left_by_a_killed_create_does_not_block_the_next(lab, clean):
    """create() probes whether the target exists with a transient pool; if a create is killed
    while its probe runs, the next create stops the leftover instead of calling the target taken."""
    probe = X.element("pool", type="dir")
    X.sub(probe, "name", "virtops-probe-leftover")
    X.sub(X.sub(probe, "target"), "path", "/var/lib/libvirt")
    clean.conn.storagePoolCreateXML(X.to_string(probe), 0)
    result = cli(lab, "pool", "create", "test", "--target", TEST_TARGET)
    assert result.returncode == 0, result.stderr
    assert [p.name() for p in clean.conn.listAllStoragePools()] == ["test"]
