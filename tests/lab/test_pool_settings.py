"""A dir pool's permissions, changed in place on real libvirtd and checked on the directory itself."""
from __future__ import annotations

import json
import os
import stat

import libvirt
import pytest

from tests.helpers import host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.base.errors import InvalidInput, VirtopsError
from virtops.ops.pool import PoolSpec


def _pool(host, name: str, start: bool = True):
    if host.pools.exists(name):
        host.pools.delete(name, with_volumes=True)
    host.pools.create(PoolSpec(name=name, target=f"/var/lib/libvirt/{name}", mode="0711"), start=start)
    return host.conn.storagePoolLookupByName(name)


def _on_disk(lab, name: str) -> os.stat_result:
    return os.stat(lab.state_dir / "lib" / name)  # the lab's /var/lib/libvirt


def test_a_running_pool_gets_its_new_mode_owner_and_group_on_disk(lab, host):
    pool = _pool(host, "perm-run")
    host.volumes.create("perm-run", "keep.raw", 1024**2)
    assert stat.S_IMODE(_on_disk(lab, "perm-run").st_mode) == 0o711
    result = host.pools.set_permissions("perm-run", mode="0750", owner=107, group=108)
    assert result.steps == ["redefined", "stopped", "built (permissions applied to the directory)", "started"]
    st = _on_disk(lab, "perm-run")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 107, 108)
    assert pool.isActive() and pool.autostart()
    for flags in (0, libvirt.VIR_STORAGE_XML_INACTIVE):  # the running pool and its definition agree
        perms = X.parse(pool.XMLDesc(flags)).find("target/permissions")
        assert (perms.findtext("mode"), perms.findtext("owner"), perms.findtext("group")) == ("0750", "107", "108")
    assert [v.name for v in host.volumes.list("perm-run")] == ["keep.raw"]
    # Only what is given changes.
    host.pools.set_permissions("perm-run", mode="0700")
    st = _on_disk(lab, "perm-run")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 107, 108)
    host.pools.delete("perm-run", with_volumes=True)


def test_a_stopped_pool_stays_stopped_and_its_directory_changes(lab, host):
    pool = _pool(host, "perm-stop", start=False)
    host.pools.set_permissions("perm-stop", mode="0755")
    assert not pool.isActive()
    assert stat.S_IMODE(_on_disk(lab, "perm-stop").st_mode) == 0o755
    host.pools.delete("perm-stop")


@pytest.mark.parametrize("kwargs, field", [
    (dict(mode="999"), "mode"),
    (dict(owner="no-such-user-here"), "owner"),
    (dict(group="no-such-group-here"), "group"),
    (dict(), "mode"),
])
def test_bad_permissions_are_refused_with_the_host_and_directory_unchanged(lab, host, kwargs, field):
    _pool(host, "perm-bad")
    before, mode = host_state(host.conn), _on_disk(lab, "perm-bad").st_mode
    with pytest.raises(InvalidInput) as err:
        host.pools.set_permissions("perm-bad", **kwargs)
    assert err.value.field == field
    assert host_state(host.conn) == before and _on_disk(lab, "perm-bad").st_mode == mode
    host.pools.delete("perm-bad")


def test_a_failing_start_restores_the_old_permissions(lab, host, monkeypatch):
    pool = _pool(host, "perm-undo")
    before = host_state(host.conn)
    real_create = libvirt.virStoragePool.create
    calls = []

    def create_once_broken(self, flags=0):
        calls.append(1)
        if len(calls) == 1:
            raise libvirt.libvirtError("injected failure")
        return real_create(self, flags)

    monkeypatch.setattr(libvirt.virStoragePool, "create", create_once_broken)
    with pytest.raises(VirtopsError, match="old permissions were restored"):
        host.pools.set_permissions("perm-undo", mode="0770")
    monkeypatch.undo()
    assert pool.isActive() and host_state(host.conn) == before
    assert stat.S_IMODE(_on_disk(lab, "perm-undo").st_mode) == 0o711
    host.pools.delete("perm-undo")


def test_pool_set_on_the_command_line(lab, host):
    _pool(host, "perm-cli")
    out = run_cli("pool", "set", "perm-cli", "--mode", "0751", "--json", uri=lab.uri)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pool"]["mode"] == "0751"
    assert stat.S_IMODE(_on_disk(lab, "perm-cli").st_mode) == 0o751
    before = host_state(host.conn)
    bad = run_cli("pool", "set", "perm-cli", "--mode", "rwx", uri=lab.uri)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --mode: 'rwx' is not an octal mode")
    assert len(bad.stderr.strip().splitlines()) == 1 and host_state(host.conn) == before
    host.pools.delete("perm-cli")
