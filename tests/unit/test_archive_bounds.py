"""Reading a backup archive is bounded (size, members, bytes per member and in all, path depth),
refuses in one sentence, leaves nothing in the temp directory (also when interrupted, and a
killed run's leftovers are removed by the next), and checks that each file is the object its
manifest entry says before anything may change."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from virtops.backup import archive as B
from virtops.base.errors import VirtopsError

UUID_A = "11111111-2222-3333-4444-555555555555"
UUID_B = "66666666-7777-8888-9999-000000000000"


def network_xml(name: str, uuid: str = UUID_A) -> bytes:
    return (f"<network><name>{name}</name><uuid>{uuid}</uuid><bridge name='vbr9'/>"
            "<ip address='10.9.0.1' netmask='255.255.255.0'/></network>\n").encode()


def entry(kind: str, name: str, data: bytes, uuid: str | None = UUID_A) -> dict:
    return {"kind": kind, "name": name, "file": f"{kind}/{name}.xml", "sha256": hashlib.sha256(data).hexdigest(),
            "uuid": uuid, "autostart": False, "active": False}


def manifest(*entries: dict, **extra) -> bytes:
    return json.dumps({"format": 1, "objects": list(entries), **extra}).encode()


def write_tar(path: Path, members: list[tuple], mode: str = "w:gz") -> Path:
    """members: (name, bytes) files, or (TarInfo, bytes|None) for anything unusual."""
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def good_members(name: str = "n1") -> list[tuple]:
    xml = network_xml(name)
    return [("manifest.json", manifest(entry("network", name, xml))), (f"network/{name}.xml", xml)]


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch):
    """The temp directory of every test: checked to be empty afterwards."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    yield folder


def leftovers(scratch: Path) -> list[str]:
    return sorted(p.name for p in scratch.iterdir())


def refusal(source: Path, **kwargs) -> str:
    with pytest.raises(VirtopsError) as caught:
        B.read_backup(source, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_archive_reads_and_its_scratch_goes_with_it(tmp_path, scratch):
    archive = B.read_backup(write_tar(tmp_path / "good.tar.gz", good_members()))
    assert [o.key for o in archive.objects] == ["network/n1"]
    archive._unpacked.cleanup()
    assert leftovers(scratch) == []


# -- bounds ------------------------------------------------------------------------------------
def test_a_member_declaring_gigabytes_is_refused_from_its_header(tmp_path, scratch):
    """The 10 GiB member is refused before a byte of it is read: the archive holds only its header."""
    huge = tarfile.TarInfo("network/n1.xml")
    huge.size = 10 * 1024**3
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("manifest.json"), io.BytesIO(b""))
    source = tmp_path / "bomb.tar.gz"
    source.write_bytes(gzip.compress(raw.getvalue()[:512] + huge.tobuf()))
    message = refusal(source)
    assert f"'network/n1.xml' unpacks to {10 * 1024**3} bytes" in message and "at most 16 MiB" in message
    assert leftovers(scratch) == []


def test_a_configuration_member_over_the_file_limit_is_refused(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(B, "MAX_FILE_BYTES", 1024)
    members = good_members() + [("domain/big.xml", b"\0" * 1025)]
    assert "'domain/big.xml' unpacks to 1025 bytes" in refusal(write_tar(tmp_path / "a.tar.gz", members))
    assert leftovers(scratch) == []


def test_volume_data_over_the_total_is_refused_and_nothing_stays(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(B, "MAX_UNPACKED_BYTES", 1024**2)
    members = good_members() + [("data/p/v.extents", b"{}"), ("data/p/v.data", b"\0" * (2 * 1024**2))]
    message = refusal(write_tar(tmp_path / "a.tar.gz", members))
    assert "more than 1048576 bytes (reached at 'data/p/v.data')" in message and "1 TiB" in message
    assert leftovers(scratch) == []


def test_a_dry_run_neither_unpacks_nor_counts_volume_data(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(B, "MAX_UNPACKED_BYTES", 1024**2)
    members = good_members() + [("data/p/v.data", b"\0" * (2 * 1024**2))]
    archive = B.read_backup(write_tar(tmp_path / "a.tar.gz", members), with_data=False)
    assert not (archive.root / "data").exists()
    archive._unpacked.cleanup()


def test_more_members_than_the_limit_are_refused(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(B, "MAX_MEMBERS", 10)
    members = good_members() + [(f"domain/d{i}.xml", b"<domain/>") for i in range(9)]
    assert "more than 10 members" in refusal(write_tar(tmp_path / "a.tar.gz", members))
    assert leftovers(scratch) == []


def test_a_member_deeper_than_the_layout_is_refused(tmp_path, scratch):
    members = good_members() + [("data/a/b/c.data", b"x")]
    assert "'data/a/b/c.data' is 4 levels deep" in refusal(write_tar(tmp_path / "a.tar.gz", members))


def test_an_archive_over_the_compressed_limit_is_refused(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(B, "MAX_ARCHIVE_BYTES", 100)
    message = refusal(write_tar(tmp_path / "a.tar.gz", good_members()))
    assert "the archive is" in message and "more than" in message


@pytest.mark.parametrize("member, words", [
    ("../evil.xml", "escapes the archive's folder"),
    ("/tmp/evil.xml", "escapes the archive's folder"),
    ("network/../../evil.xml", "escapes the archive's folder"),
])
def test_a_member_that_escapes_says_so(tmp_path, scratch, member, words):
    message = refusal(write_tar(tmp_path / "a.tar.gz", [(member, b"x")] + good_members()))
    assert words in message and repr(member) in message
    assert "neither a readable" not in message
    assert not (tmp_path / "evil.xml").exists()


@pytest.mark.parametrize("kind, words", [(tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link"),
                                         (tarfile.CHRTYPE, "device"), (tarfile.FIFOTYPE, "named pipe")])
def test_links_and_devices_are_refused_by_name(tmp_path, scratch, kind, words):
    info = tarfile.TarInfo("network/n1.xml")
    info.type, info.linkname = kind, "/etc/passwd"
    message = refusal(write_tar(tmp_path / "a.tar.gz", [(info, None)]))
    assert f"'network/n1.xml' is a {words}" in message


def test_garbage_is_still_called_no_archive(tmp_path, scratch):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    assert "neither a readable .tar.gz archive nor a backup directory" in refusal(junk)
    assert leftovers(scratch) == []


# -- interruptions -------------------------------------------------------------------------------
def test_an_interrupt_while_unpacking_removes_the_scratch_folder(tmp_path, scratch, monkeypatch):
    def interrupted(*_args, **_kwargs):
        assert leftovers(scratch)  # the scratch folder exists while unpacking
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        B.read_backup(write_tar(tmp_path / "a.tar.gz", good_members()))
    assert leftovers(scratch) == []


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_a_killed_runs_scratch_folder_is_removed_by_the_next_run(tmp_path, scratch):
    stale = scratch / f"virtops-restore-{_dead_pid()}-x1y2"
    (stale / "network").mkdir(parents=True)
    (stale / "network" / "n.xml").write_text("<network/>")
    running = scratch / f"virtops-restore-{os.getpid()}-busy"  # a live run's folder stays
    running.mkdir()
    archive = B.read_backup(write_tar(tmp_path / "a.tar.gz", good_members()))
    archive._unpacked.cleanup()
    assert leftovers(scratch) == [running.name]


SLOW_RESTORE = textwrap.dedent("""\
    import sys, tarfile, time
    copy = tarfile.copyfileobj
    def slow(*args, **kwargs):  # an archive whose unpacking takes a while
        time.sleep(60)
        return copy(*args, **kwargs)
    tarfile.copyfileobj = slow
    from virtops.cli import main
    sys.argv = ["virtops", "-c", "test:///default", "backup", "restore", sys.argv[1]]
    main()
    """)


def test_sigterm_while_unpacking_ends_the_command_and_removes_the_scratch_folder(tmp_path, scratch):
    source = write_tar(tmp_path / "a.tar.gz", good_members())
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RESTORE, str(source)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(scratch.glob("virtops-restore-*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and err.strip() == "Aborted.", err  # as Ctrl-C ends a command
    assert leftovers(scratch) == []


# -- the manifest ----------------------------------------------------------------------------------
@pytest.mark.parametrize("objects, words", [
    (None, "objects: input should be a valid list, not None"),
    (["network/n1.xml"], "objects.0: input should be a valid dictionary"),
    ([{"kind": "network", "file": "network/n1.xml", "sha256": "0"}], "objects.0.name is missing"),
    ([{"kind": "network", "name": 5, "file": "network/n1.xml", "sha256": "0"}], "objects.0.name: input should be"),
])
def test_a_damaged_manifest_is_refused_in_a_sentence(tmp_path, scratch, objects, words):
    members = [("manifest.json", json.dumps({"format": 1, "objects": objects}).encode())]
    message = refusal(write_tar(tmp_path / "a.tar.gz", members))
    assert "manifest.json is damaged" in message and words in message, message
    assert leftovers(scratch) == []


@pytest.mark.parametrize("text", [b"[]", b"null", b"\xff\xfe", b"{\"objects\": [], \"data\": [1]}"])
def test_a_manifest_that_is_no_mapping_is_refused_in_a_sentence(tmp_path, scratch, text):
    message = refusal(write_tar(tmp_path / "a.tar.gz", [("manifest.json", text)]))
    assert "manifest.json" in message


# -- each file is the object its entry says ---------------------------------------------------------
@pytest.mark.parametrize("held, words", [
    (network_xml("default", UUID_B), "holds <network> 'default' with UUID " + UUID_B),
    (network_xml("n1", UUID_B), "holds <network> 'n1' with UUID " + UUID_B),
    (network_xml("n1").replace(b"network>", b"domain>"), "holds <domain> 'n1'"),
    (b"<network><name>n1</name></network>", "holds <network> 'n1', but"),
])
def test_a_file_holding_another_object_is_refused_naming_file_and_content(tmp_path, scratch, held, words):
    members = [("manifest.json", manifest(entry("network", "n1", held))), ("network/n1.xml", held)]
    message = refusal(write_tar(tmp_path / "a.tar.gz", members))
    assert message.startswith(f"backup {tmp_path / 'a.tar.gz'}: network/n1.xml {words}"), message
    assert f"the manifest says it is network 'n1' with UUID {UUID_A}" in message


def test_a_volume_file_is_checked_against_the_volume_part_of_its_name(tmp_path, scratch):
    vol = b"<volume><name>other.qcow2</name><capacity>1</capacity></volume>"
    members = [("manifest.json", manifest(entry("volume", "pool/disk.qcow2", vol, uuid=None))),
               ("volume/pool/disk.qcow2.xml", vol)]
    assert "holds <volume> 'other.qcow2', but the manifest says it is volume 'disk.qcow2'" in \
        refusal(write_tar(tmp_path / "a.tar.gz", members))


def test_an_entry_pointing_at_another_file_is_refused(tmp_path, scratch):
    xml = network_xml("n1")
    wrong = {**entry("network", "n1", xml), "file": "domain/n1.xml"}
    members = [("manifest.json", manifest(wrong)), ("domain/n1.xml", xml)]
    assert "lists network 'n1' in 'domain/n1.xml'" in refusal(write_tar(tmp_path / "a.tar.gz", members))


def test_an_object_listed_twice_is_refused(tmp_path, scratch):
    xml = network_xml("n1")
    members = [("manifest.json", manifest(entry("network", "n1", xml), entry("network", "n1", xml))),
               ("network/n1.xml", xml)]
    assert "lists network/n1 twice" in refusal(write_tar(tmp_path / "a.tar.gz", members))


def test_a_backup_directory_is_checked_the_same_way(tmp_path, scratch):
    folder = tmp_path / "backup"
    (folder / "network").mkdir(parents=True)
    held = network_xml("default", UUID_B)
    (folder / "manifest.json").write_bytes(manifest(entry("network", "n1", held)))
    (folder / "network" / "n1.xml").write_bytes(held)
    assert "network/n1.xml holds <network> 'default'" in refusal(folder)


def test_a_file_that_is_not_xml_is_refused_in_a_sentence(tmp_path, scratch):
    broken = b"<network><name>broken"
    members = [("manifest.json", manifest(entry("network", "n1", broken))), ("network/n1.xml", broken)]
    assert "network/n1.xml is not valid XML" in refusal(write_tar(tmp_path / "a.tar.gz", members))
