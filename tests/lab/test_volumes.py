"""Storage volumes on a real libvirtd: the handbook's volume, allocation and formats, in-use
protection, every refusal leaving the host unchanged, and the sparse round trip."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

from tests.helpers import host_state, run_cli
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.base.errors import InvalidInput
from virtops.ops.pool import PoolSpec

TEST_TARGET = "/var/lib/libvirt/test"
MiB = 1024**2
GiB = 1024**3


def stable_state(conn) -> dict[str, str]:
    """host_state without the pools' size figures, which move whenever anything on the disk changes."""
    return {key: re.sub(r"<(capacity|allocation|available) unit='bytes'>\d+<", r"<\1 unit='bytes'>-<", xml)
            if key.startswith("pool/") else xml for key, xml in host_state(conn).items()}


@pytest.fixture
def pool(lab, host):
    """Pool `test` of the handbook, removed with its volumes and any domain afterwards."""
    host.pools.create(PoolSpec(name="test", target=TEST_TARGET, mode="0700", owner="root", group="root"))
    yield host
    for dom in host.conn.listAllDomains(0):
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    for name in [p.name() for p in host.conn.listAllStoragePools(0)]:
        if host.pools.exists(name):
            host.pools.delete(name, with_volumes=True)


def cli(lab, *args):
    return run_cli(*args, uri=lab.uri)


def on_disk(lab, name: str):
    return lab.state_dir / "lib" / "test" / name


def refused(lab, conn, *args, field: str, words: str):
    """Run a command that must be refused: exit 1, one sentence naming the field, host unchanged."""
    before = stable_state(conn)
    result = cli(lab, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"error: {field}") and words in message, message
    assert stable_state(conn) == before
    return message


# -- the handbook: volume `test` -----------------------------------------------------------------
def test_handbook_volume_raw_1000M(lab, pool):
    result = cli(lab, "vol", "create", "test", "test", "--capacity", "1000M", "--allocation", "0", "--format", "raw")
    assert result.returncode == 0, result.stderr
    vol = pool.conn.storagePoolLookupByName("test").storageVolLookupByName("test")
    root = X.parse(vol.XMLDesc(0))
    X.validate(root, "storagevol")
    assert int(root.findtext("capacity")) == 1048576000
    assert root.find("target/format").get("type") == "raw"
    assert on_disk(lab, "test").stat().st_size == 1048576000
    assert on_disk(lab, "test").stat().st_blocks == 0  # allocation 0 = sparse
    info = json.loads(cli(lab, "vol", "info", "test/test", "--json").stdout)
    assert info["capacity"] == 1048576000 and info["path"] == f"{TEST_TARGET}/test"
    assert "1048576000 bytes" in cli(lab, "vol-info", "test/test").stdout
    virsh = subprocess.run(["virsh", "-c", lab.uri, "vol-info", "--bytes", "test", "--pool", "test"],
                           capture_output=True, text=True).stdout
    assert re.search(r"Capacity:\s+1048576000 bytes", virsh)


def test_fully_allocated_and_qcow2(lab, pool):
    assert cli(lab, "vol", "create", "test", "full", "--capacity", "64M", "--allocation", "64M").returncode == 0
    assert on_disk(lab, "full").stat().st_blocks * 512 >= 64 * MiB
    result = cli(lab, "vol-create-as", "test", "disk.qcow2", "--capacity", "5G", "--format", "qcow2", "--json")
    data = json.loads(result.stdout)
    assert data["format"] == "qcow2" and data["capacity"] == 5 * GiB
    assert on_disk(lab, "disk.qcow2").read_bytes()[:4] == b"QFI\xfb"


def test_linked_clone_with_backing_is_instant(lab, pool):
    assert cli(lab, "vol", "create", "test", "base", "--capacity", "2G", "--allocation", "256M").returncode == 0
    result = cli(lab, "vol", "create", "test", "child", "--capacity", "2G", "--backing", "test/base", "--json")
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["format"] == "qcow2" and child["backing"] == f"{TEST_TARGET}/base"
    assert child["allocation"] < MiB  # nothing copied
    root = X.parse(pool.conn.storagePoolLookupByName("test").storageVolLookupByName("child").XMLDesc(0))
    X.validate(root, "storagevol")
    assert root.findtext("backingStore/path") == f"{TEST_TARGET}/base"


def test_capacity_beyond_free_space_only_warns(lab, pool):
    free = pool.conn.storagePoolLookupByName("test").info()[3]
    result = cli(lab, "vol", "create", "test", "huge", "--capacity", str(free + GiB))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: capacity") and "more than pool test has free" in result.stderr


# -- refusals ---------------------------------------------------------------------------------------
def test_create_refusals_change_nothing(lab, pool):
    conn = pool.conn
    assert cli(lab, "vol", "create", "test", "test", "--capacity", "1000M").returncode == 0
    conn.storagePoolDefineXML(PoolSpec(name="idle", target="/var/lib/libvirt/idle").to_xml(), 0)
    free = conn.storagePoolLookupByName("test").info()[3]
    cases = [
        (["test", "test", "--capacity", "1G"], "name", "already has a volume named 'test'"),
        (["test", "a/b", "--capacity", "1G"], "name", "no '/'"),
        (["test", ".hidden", "--capacity", "1G"], "name", "does not start with '.'"),
        (["nope", "x", "--capacity", "1G"], "pool", "no storage pool named 'nope'"),
        (["idle", "x", "--capacity", "1G"], "pool", "not running"),
        (["test", "x", "--capacity", "lots"], "--capacity", "not a size"),
        (["test", "x", "--capacity", "10Q"], "--capacity", "not known"),
        (["test", "x", "--capacity", "0"], "--capacity", "zero"),
        (["test", "x", "--capacity", "1G", "--allocation", "2G"], "--allocation", "more than the capacity"),
        (["test", "x", "--capacity", str(free * 2), "--allocation", str(free + GiB)], "--allocation", "has free"),
        (["test", "x", "--capacity", "1G", "--backing", "test/missing"], "--backing", "no volume test/missing"),
        (["test", "x", "--capacity", "1G", "--backing", "nonsense"], "--backing", "not POOL/VOLUME"),
        (["test", "x", "--capacity", "1G", "--format", "raw", "--backing", "test/test"], "--backing", "must be qcow2"),
        (["test", "x", "--capacity", "1M", "--backing", "test/test"], "--capacity", "smaller than the backing"),
    ]
    for args, field, words in cases:
        refused(lab, conn, "vol", "create", *args, field=field, words=words)
    assert cli(lab, "vol", "create", "test", "x", "--capacity", "1G", "--format", "vmdk").returncode == 2


def test_core_refusal_raises_invalid_input(pool):
    with pytest.raises(InvalidInput) as err:
        pool.volumes.create("test", "x", "0")
    assert err.value.field == "capacity"


# -- list, info, dumpxml, used by ---------------------------------------------------------------------
def test_list_shows_formats_sizes_paths_and_users(lab, pool):
    for name in ("a", "b", "c"):
        assert cli(lab, "vol", "create", "test", name, "--capacity", "10M").returncode == 0
    pool.conn.defineXML(DomainSpec(name="web", disks=[DiskSpec(target="vdb", path=f"{TEST_TARGET}/a")]).to_xml())
    pool.conn.defineXML(DomainSpec(name="db", disks=[DiskSpec(target="vdb", pool="test", volume="a"),
                                                     DiskSpec(target="vdc", pool="test", volume="b")]).to_xml())
    listed = {v["name"]: v for v in json.loads(cli(lab, "vol", "list", "test", "--json").stdout)}
    assert set(listed) == {"a", "b", "c"}
    assert listed["a"]["used_by"] == ["db", "web"] and listed["b"]["used_by"] == ["db"] and listed["c"]["used_by"] == []
    assert listed["c"]["format"] == "raw" and listed["c"]["capacity"] == 10 * MiB
    assert listed["c"]["path"] == f"{TEST_TARGET}/c"
    table = cli(lab, "vol-list", "test").stdout
    assert "db, web" in table and "10.00 MiB" in table
    assert json.loads(cli(lab, "vol", "info", "test/a", "--json").stdout)["used_by"] == ["db", "web"]
    X.validate(X.parse(cli(lab, "vol-dumpxml", "test/a").stdout), "storagevol")


def test_list_of_unknown_pool(lab, pool):
    result = cli(lab, "vol", "list", "nope")
    assert result.returncode == 1 and "no storage pool named 'nope'" in result.stderr


# -- resize, clone, wipe -------------------------------------------------------------------------------
def test_resize_grow_and_shrink_rules(lab, pool):
    conn = pool.conn
    assert cli(lab, "vol", "create", "test", "r", "--capacity", "100M", "--allocation", "40M").returncode == 0
    assert cli(lab, "vol-resize", "test/r", "200M").returncode == 0
    assert on_disk(lab, "r").stat().st_size == 200 * MiB
    refused(lab, conn, "vol", "resize", "test/r", "150M", field="size", words="--shrink")
    refused(lab, conn, "vol", "resize", "test/r", "20M", "--shrink", field="size", words="below the space")
    refused(lab, conn, "vol", "resize", "test/r", "0", field="size", words="zero")
    assert cli(lab, "vol", "resize", "test/r", "150M", "--shrink").returncode == 0
    assert on_disk(lab, "r").stat().st_size == 150 * MiB


def test_clone_full_and_linked(lab, pool):
    assert cli(lab, "vol", "create", "test", "src", "--capacity", "32M").returncode == 0
    on_disk(lab, "src").write_bytes(b"hello" + b"\0" * (32 * MiB - 5))
    assert cli(lab, "vol", "clone", "test/src", "copy").returncode == 0
    assert on_disk(lab, "copy").read_bytes()[:5] == b"hello"
    assert cli(lab, "vol-clone", "test/src", "link", "--linked").returncode == 0
    link = json.loads(cli(lab, "vol", "info", "test/link", "--json").stdout)
    assert link["format"] == "qcow2" and link["backing"] == f"{TEST_TARGET}/src"
    refused(lab, pool.conn, "vol", "clone", "test/src", "copy", field="name", words="already has")


def test_wipe(lab, pool):
    assert cli(lab, "vol", "create", "test", "w", "--capacity", "4M").returncode == 0
    on_disk(lab, "w").write_bytes(b"\xff" * 4 * MiB)
    assert cli(lab, "vol-wipe", "test/w").returncode == 0
    assert on_disk(lab, "w").read_bytes() == b"\0" * 4 * MiB
    refused(lab, pool.conn, "vol", "wipe", "test/w", "--algorithm", "shred", field="--algorithm", words="not known")


# -- delete and in-use protection -----------------------------------------------------------------------
@pytest.mark.parametrize("disk", [{"path": f"{TEST_TARGET}/used"}, {"pool": "test", "volume": "used"}],
                         ids=["by path", "by pool/volume"])
def test_delete_refuses_a_volume_in_use_unless_forced(lab, pool, disk):
    assert cli(lab, "vol", "create", "test", "used", "--capacity", "1M").returncode == 0
    pool.conn.defineXML(DomainSpec(name="guest", disks=[DiskSpec(target="vdb", **disk)]).to_xml())
    refused(lab, pool.conn, "vol", "delete", "test/used", field="volume test/used is used by VM(s) guest", words="--force")
    refused(lab, pool.conn, "vol", "wipe", "test/used", field="volume test/used is used", words="--force")
    forced = cli(lab, "vol-delete", "test/used", "--force")
    assert forced.returncode == 0 and "guest" in forced.stderr
    assert not on_disk(lab, "used").exists()


def test_delete_unused_and_unknown(lab, pool):
    assert cli(lab, "vol", "create", "test", "gone", "--capacity", "1M").returncode == 0
    assert cli(lab, "vol", "delete", "test/gone").returncode == 0
    refused(lab, pool.conn, "vol", "delete", "test/gone", field="volume", words="no volume named 'gone'")
    refused(lab, pool.conn, "vol", "delete", "justaname", field="volume", words="not POOL/VOLUME")


# -- sparse upload and download -------------------------------------------------------------------------------
def sparse_image(path, size: int, data_mib: int) -> None:
    """SIZE bytes of which DATA_MIB MiB hold random data in four places; the rest are holes."""
    with open(path, "wb") as image:
        image.truncate(size)
        for i in range(4):
            image.seek(i * (size // 4) + i * MiB)
            image.write(os.urandom(data_mib // 4 * MiB))


def sha256(path) -> str:
    """A checksum of the file's bytes that reads only its data extents (SEEK_DATA/SEEK_HOLE): the size,
    then every non-zero 1 MiB block with its offset. Equal digests mean byte-identical files, and a
    4 GiB image with 16 MiB of data is checked in milliseconds rather than by reading 4 GiB."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        digest.update(str(size).encode())
        offset, last = 0, -MiB
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break  # only a hole is left
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for block in range(max(start - start % MiB, last + MiB), end, MiB):
                last = block  # a block shared by two extents counts once
                chunk = os.pread(fd, MiB, block)
                if chunk.strip(b"\0"):
                    digest.update(f"{block}:".encode() + chunk)
            offset = end
    finally:
        os.close(fd)
    return digest.hexdigest()


def test_sparse_round_trip_of_4GiB_with_16MiB_of_data(lab, pool, tmp_path):
    image, back = tmp_path / "image.raw", tmp_path / "back.raw"
    sparse_image(image, 4 * GiB, 16)
    assert cli(lab, "vol", "create", "test", "img", "--capacity", "4G").returncode == 0
    up = pool.volumes.upload("test/img", str(image))
    assert up.size == 4 * GiB and up.data_bytes == 16 * MiB  # only the data crossed the wire
    stored = on_disk(lab, "img")
    assert stored.stat().st_blocks * 512 <= 17 * MiB  # sparse on the host
    result = cli(lab, "vol-download", "test/img", str(back))
    assert result.returncode == 0, result.stderr
    assert "16.00 MiB of data received" in result.stdout
    assert sha256(back) == sha256(image) == sha256(stored)
    assert back.stat().st_size == 4 * GiB and back.stat().st_blocks * 512 <= 17 * MiB  # sparse here too


def test_upload_over_data_leaves_no_old_data_in_holes(lab, pool, tmp_path):
    assert cli(lab, "vol", "create", "test", "img", "--capacity", "64M").returncode == 0
    on_disk(lab, "img").write_bytes(b"\xee" * 64 * MiB)
    image = tmp_path / "image.raw"
    sparse_image(image, 64 * MiB, 4)
    result = cli(lab, "vol-upload", "test/img", str(image))
    assert result.returncode == 0, result.stderr
    assert sha256(on_disk(lab, "img")) == sha256(image)


def test_transfer_refusals(lab, pool, tmp_path):
    conn = pool.conn
    assert cli(lab, "vol", "create", "test", "small", "--capacity", "1M").returncode == 0
    big = tmp_path / "big.raw"
    big.write_bytes(b"\0" * (2 * MiB))
    refused(lab, conn, "vol", "upload", "test/small", str(big), field="file", words="larger than volume test/small")
    refused(lab, conn, "vol", "upload", "test/small", str(tmp_path / "missing"), field="file", words="no such file")
    existing = tmp_path / "exists.raw"
    existing.write_text("keep me")
    refused(lab, conn, "vol", "download", "test/small", str(existing), field="file", words="--overwrite")
    assert existing.read_text() == "keep me"
    assert cli(lab, "vol", "download", "test/small", str(existing), "--overwrite").returncode == 0
    assert existing.stat().st_size == MiB


def test_virsh_style_vol_create_as_takes_the_capacity_as_third_argument(lab, pool):
    made = cli(lab, "vol-create-as", "test", "test", "1000M", "--format", "raw")
    assert made.returncode == 0, made.stderr
    assert pool.volumes.info("test/test").capacity == 1048576000
    missing = cli(lab, "vol", "create", "test", "other")
    assert missing.returncode == 2 and "give a capacity" in missing.stderr


def test_a_backing_volume_is_not_deleted_under_its_linked_clones(lab, pool):
    assert cli(lab, "vol", "create", "test", "base", "--capacity", "16M").returncode == 0
    assert cli(lab, "vol", "clone", "test/base", "child", "--linked").returncode == 0
    refused(lab, pool.conn, "vol", "delete", "test/base", field="volume test/base is the backing file of test/child",
            words="--force")
    refused(lab, pool.conn, "vol", "wipe", "test/base", field="volume test/base is the backing file", words="--force")
    assert cli(lab, "vol", "delete", "test/child").returncode == 0  # the overlay first: then the base may go
    assert cli(lab, "vol", "delete", "test/base").returncode == 0
