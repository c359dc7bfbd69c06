"""Fuzzing what users hand in: random YAML and random bytes to the spec loader, random archives
and manifests to backup reading. Each either succeeds or is refused with a one-line VirtopsError;
any other exception is a bug. Bounded: every example has a deadline, the file runs in seconds."""
from __future__ import annotations

import io
import json
import tarfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtops.backup import archive as B
from virtops.base.errors import VirtopsError
from virtops.spec.document import loads

FUZZ = settings(max_examples=80, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])

FIELDS = ["pools", "networks", "vms", "name", "type", "target", "mode", "owner", "group", "volumes", "capacity",
          "allocation", "format", "backing", "subnet", "gateway", "dhcp", "hosts", "mac", "ip", "memory", "vcpus",
          "boot", "kernel", "initrd", "cmdline", "disks", "volume", "bus", "nics", "network", "model", "autostart",
          "active", "mtu", "domain", "ipv6", "dev", "bridge", "label", "host", "source_path", "device"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["1000M", "5G", "99999999999999999999999", "0700", "10.0.0.0/24", "52:54:00:00:00:01",
                     "/var/lib/libvirt/x", "vmlinuz", "/srv/a\nb", "nat", "qcow2", "test/test", "-1G", "1.5"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)
SPECS = st.dictionaries(st.sampled_from(["pools", "networks", "vms"]) | st.text(max_size=6),
                        st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6), max_size=3) | VALUES,
                        max_size=3)
YAMLISH = st.text(alphabet=st.sampled_from(list("abcvmpol:-[]{}&*!|>'\"#%@`,?\n \t0123456789.") + ["\x00", "é"]),
                  max_size=200)

RAW_SCALARS = st.sampled_from(["2001-13-45", "2001-02-29", "!custom 1", "!!binary '%%%'", "!!int x", "!!float ''",
                               "*nowhere", "&a 1", "[*a, *a]", "{a: 1, a: 2}", "? [a]", "1:2:3", "0o789", "0x",
                               ".inf", "-.nan", "~", "'1000M'", "[[[[[[[[[[]]]]]]]]]]", "!!python/object:os.system"])
RAW_LINES = st.tuples(st.sampled_from(["", "  ", "    ", "- ", "  - ", "      "]),
                      st.sampled_from(FIELDS) | st.text(max_size=5), RAW_SCALARS | st.text(max_size=10)).map(
    lambda t: f"{t[0]}{t[1]}: {t[2]}")
RAW_YAML = st.lists(RAW_LINES, max_size=12).map("\n".join)


def only_refusals(call) -> None:
    try:
        call()
    except VirtopsError as err:
        assert "\n" not in str(err) and str(err)


@FUZZ
@given(SPECS)
def test_random_specs_load_or_are_refused_in_a_sentence(data):
    only_refusals(lambda: loads(yaml.safe_dump(data), "fuzz.yaml"))


@FUZZ
@given(YAMLISH | RAW_YAML)
def test_random_yaml_text_loads_or_is_refused_in_a_sentence(text):
    only_refusals(lambda: loads(text, "fuzz.yaml"))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_load_or_are_refused_in_a_sentence(data):
    only_refusals(lambda: loads(data, "fuzz.yaml"))


# -- backup archives ------------------------------------------------------------------------------
@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def read_and_close(source, with_data: bool = True) -> None:
    archive = B.read_backup(source, with_data=with_data)
    if archive._unpacked is not None:
        archive._unpacked.cleanup()


ENTRY = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["pool", "volume", "network", "domain", "x"]) | VALUES,
    "name": st.sampled_from(["n1", "p/v", "../x", ""]) | VALUES,
    "file": st.sampled_from(["network/n1.xml", "volume/p/v.xml", "../etc/passwd", "/etc/passwd"]) | VALUES,
    "sha256": st.text(max_size=64) | VALUES,
    "uuid": VALUES, "autostart": VALUES, "active": VALUES})
MANIFESTS = st.one_of(VALUES, st.fixed_dictionaries({"objects": st.lists(ENTRY, max_size=3) | VALUES},
                                                    optional={"data": VALUES, "format": VALUES}))
MEMBER_NAMES = st.sampled_from(["manifest.json", "network/n1.xml", "volume/p/v.xml", "data/p/v.data",
                                "data/p/v.extents", "../up.xml", "/abs.xml", "a/b/c/d.xml", "network"])


@FUZZ
@given(manifest=MANIFESTS, xml=st.sampled_from([b"<network><name>n1</name></network>", b"<network>", b"", b"\xff"]))
def test_random_manifests_read_or_are_refused_in_a_sentence(tmp_path_factory, manifest, xml):
    folder = tmp_path_factory.mktemp("backup")
    (folder / "network").mkdir()
    (folder / "network" / "n1.xml").write_bytes(xml)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    only_refusals(lambda: read_and_close(folder))


@FUZZ
@given(members=st.lists(st.tuples(MEMBER_NAMES, st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]),
                                  st.binary(max_size=64) | MANIFESTS.map(lambda m: json.dumps(m).encode())),
                        max_size=5),
       with_data=st.booleans())
def test_random_tar_archives_read_or_are_refused_in_a_sentence(scratch, members, with_data):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    source = scratch.parent / "fuzz.tar.gz"
    source.write_bytes(raw.getvalue())
    only_refusals(lambda: read_and_close(source, with_data))
    assert list(scratch.iterdir()) == []


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_an_archive_are_refused_in_a_sentence(scratch, data):
    source = scratch.parent / "fuzz.tar.gz"
    source.write_bytes(data)
    only_refusals(lambda: read_and_close(source))
    assert list(scratch.iterdir()) == []
