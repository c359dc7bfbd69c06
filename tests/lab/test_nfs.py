"""NFS source discovery against a real NFS server (nfs-ganesha) at the handbook's 192.168.0.254,
running in the lab's outside namespace; all traffic stays inside the lab's namespaces."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import host_state, run_cli
from virtops.lab.nfs import NfsServer

pytestmark = pytest.mark.skipif(not shutil.which("ganesha.nfsd") or not shutil.which("rpcbind"),
                                reason="needs nfs-ganesha, nfs-ganesha-vfs and rpcbind from Debian")


@pytest.fixture(scope="module")
def nfs_server(uplink_lab):
    with NfsServer(uplink_lab) as server:
        yield server


def test_sources_lists_the_servers_exports(uplink_lab, nfs_server):
    result = run_cli("pool", "sources", "netfs", "--host", "192.168.0.254", "--json", uri=uplink_lab.uri)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"host": "192.168.0.254", "path": "/nfs", "format": "nfs"}]
    table = run_cli("find-storage-pool-sources", "netfs", "--host", "192.168.0.254", uri=uplink_lab.uri)
    assert "/nfs" in table.stdout


def test_discovery_changes_nothing_and_a_host_without_nfs_is_one_sentence(uplink_lab, nfs_server):
    from virtops.host import Host

    host = Host(uplink_lab.uri)
    try:
        before = host_state(host.conn)
        result = run_cli("pool", "sources", "netfs", "--host", "198.51.100.2", uri=uplink_lab.uri)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1 and "198.51.100.2" in result.stderr
        bad = run_cli("pool", "sources", "netfs", "--host", "not a host", uri=uplink_lab.uri)
        assert bad.returncode == 1 and bad.stderr.startswith("error: --host:")
        assert host_state(host.conn) == before
    finally:
        host.close()
