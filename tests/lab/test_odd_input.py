"""Odd input on a real host, through the CLI: one sentence, exit 1, the host exactly as it was.
Sizes beyond any disk, relative kernels, control characters in paths, a --dev that does not
exist where nothing could be forwarded through, specs that are empty, not UTF-8 or huge, and
backup archives whose files are not what their manifest says."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import libvirt
import pytest

from tests.helpers import cli_ok, dir_pool_element, host_state, network_element, run_cli
from virtops.xmlmodels import doc as X

POOL = "oddpool"


@pytest.fixture(scope="module")
def odd_lab(lab):
    conn = libvirt.open(lab.uri)
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element(POOL)))
    pool.build(0)
    pool.create(0)
    for name, third in (("oddnet1", 81), ("oddnet2", 82)):
        conn.networkDefineXML(X.to_string(network_element(name, "nat", third)))
    try:
        yield lab
    finally:
        for name in ("oddnet1", "oddnet2"):
            conn.networkLookupByName(name).undefine()  # by name: the restore test defines oddnet2 anew
        pool.destroy()
        pool.undefine()
        conn.close()


def refused(lab, *args: str, input: str | None = None) -> str:
    """Run the CLI, require a one-sentence refusal (exit 1) that changed nothing; its message."""
    conn = libvirt.open(lab.uri)
    before = host_state(conn)
    result = run_cli(*args, uri=lab.uri, input=input)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("host: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert host_state(conn) == before
    conn.close()
    return lines[0]


def test_a_capacity_beyond_the_largest_size_is_refused_with_the_limit(odd_lab):
    message = refused(odd_lab, "vol", "create", POOL, "v", "--capacity", "99999999999999999999999")
    assert "at most 9223372036854775807 bytes (8 EiB)" in message


def test_a_relative_kernel_is_refused(odd_lab):
    message = refused(odd_lab, "vm", "create", "oddvm", "--memory", "64M", "--boot", "kernel=vmlinuz")
    assert "kernel='vmlinuz' is a relative path" in message


@pytest.mark.parametrize("char", ["\n", "\f", "\t", "\x1b", "\u2028"])
def test_a_pool_target_with_a_control_character_is_refused(odd_lab, char):
    message = refused(odd_lab, "pool", "create", "oddp2", "--target", f"/var/lib/libvirt/odd{char}dir")
    assert "--target:" in message and "control character" in message


def test_a_missing_dev_on_a_host_with_nothing_to_forward_through_says_so(odd_lab):
    message = refused(odd_lab, "net", "create", "oddnet3", "--subnet", "10.83.0.0/24", "--dev", "nosuch0")
    assert "nosuch0" in message and "(none)" not in message and "give one of" not in message


# -- specs through the CLI ----------------------------------------------------------------------
@pytest.mark.parametrize("content, words", [
    (b"", "--prune would delete everything"),
    (b"# nothing here\n", "--prune would delete everything"),
    (b"pools:\n  - name: caf\xe9\n", "not UTF-8"),
    (b"pools:\n  - name: p\n    target: /srv/p\n    volumes:\n      - name: v\n        capacity: 99999999999999999999999\n",
     "at most 9223372036854775807 bytes"),
    (b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i > 1 else '*a'] * 9)}]\n".encode() for i in range(1, 10)),
     "more than 50000 values"),
])
def test_odd_specs_are_refused_by_plan_and_apply(odd_lab, tmp_path, content, words):
    spec = tmp_path / "host.yaml"
    spec.write_bytes(content)
    for command in ("plan", "apply"):
        assert words in refused(odd_lab, command, "-f", str(spec), "--prune")


# -- backups whose files are not what the manifest says --------------------------------------------
def test_a_restore_whose_file_holds_another_network_is_refused_before_any_change(odd_lab, tmp_path):
    """The attack: network/oddnet2.xml replaced by oddnet1's XML with other addresses, checksum
    updated; the restore used to rewrite oddnet1."""
    folder = tmp_path / "backup"
    cli_ok(odd_lab.uri, "backup", "create", "-o", str(folder))
    conn = libvirt.open(odd_lab.uri)
    conn.networkLookupByName("oddnet2").undefine()  # so the restore has something to do
    forged = (folder / "network" / "oddnet1.xml").read_text().replace("10.81.0.", "10.99.0.")
    (folder / "network" / "oddnet2.xml").write_text(forged)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(e for e in manifest["objects"] if e["file"] == "network/oddnet2.xml")
    entry["sha256"] = hashlib.sha256(forged.encode()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    try:
        message = refused(odd_lab, "backup", "restore", "--replace", str(folder))
        assert "network/oddnet2.xml holds <network> 'oddnet1'" in message
        assert "the manifest says it is network 'oddnet2'" in message
        assert "10.81.0.1" in conn.networkLookupByName("oddnet1").XMLDesc(0)
    finally:
        conn.networkDefineXML(X.to_string(network_element("oddnet2", "nat", 82)))
        conn.close()


def test_a_member_that_escapes_says_so(odd_lab, tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.xml")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"<a/>"[:3]))
    message = refused(odd_lab, "backup", "restore", "--dry-run", str(archive))
    assert "'../escaped.xml' escapes the archive's folder" in message
    assert not (tmp_path.parent / "escaped.xml").exists()


@pytest.mark.parametrize("objects", [None, ["network/oddnet1.xml"], [{"kind": "network", "file": "x", "sha256": "0"}]])
def test_a_damaged_manifest_is_refused_in_a_sentence(odd_lab, tmp_path, objects):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "objects": objects}))
    assert "manifest.json is damaged" in refused(odd_lab, "backup", "restore", str(folder))
    shutil.rmtree(folder)
