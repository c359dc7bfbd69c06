"""Shell completion offers the names of the objects on the host the command line names."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import delete_objects, dir_pool_element, volume_element
from virtops.xmlmodels import doc as X
from virtops.ops.domain import DomainSpec


def complete(*words: str) -> list[str]:
    """What bash completion offers after `virtops WORDS...` (the last word is being typed)."""
    env = {**os.environ, "COMP_WORDS": " ".join(["virtops", *words]), "COMP_CWORD": str(len(words)),
           "_VIRTOPS_COMPLETE": "bash_complete"}
    script = Path(sys.executable).with_name("virtops")  # the installed command: completion keys on its name
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def objects(lab):
    import libvirt

    conn = libvirt.open(lab.uri)
    pool = conn.storagePoolDefineXML(X.to_string(dir_pool_element("cpool")))
    pool.build()
    pool.create()
    pool.createXML(X.to_string(volume_element("cvol", 1 << 20, "raw")))
    dom = conn.defineXML(DomainSpec(name="cvm1").to_xml())
    try:
        yield
    finally:
        delete_objects([dom], [], [pool])
        conn.close()


def test_names_of_the_hosts_objects(lab, objects):
    assert complete("-c", lab.uri, "vm", "info", "cv") == ["cvm1"]
    assert complete("-c", lab.uri, "dominfo", "cv") == ["cvm1"]  # virsh's names complete too
    assert "default" in complete("-c", lab.uri, "net", "info", "")
    assert complete("-c", lab.uri, "vm", "attach-nic", "cvm1", "--network", "def") == ["default"]
    assert complete("-c", lab.uri, "pool", "info", "cp") == ["cpool"]
    assert complete("-c", lab.uri, "vol", "info", "cpool/") == ["cpool/cvol"]
    assert complete("-c", lab.uri, "vm", "attach-disk", "cvm1", "cpool/c") == ["cpool/cvol"]


def test_an_unreachable_host_completes_nothing_and_says_nothing():
    assert complete("-c", "qemu+unix:///system?socket=/nonexistent/sock", "vm", "info", "") == []
