"""The listing rows of networks, pools and volumes are their models' fields, in order, so that
`--json` prints the same from a row as from a model; and the listings import no pydantic."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import libvirt
import pytest

from virtops.ops import rows, vmrows
from virtops.ops.network import NetworkInfo
from virtops.ops.pool import PoolInfo
from virtops.ops.volume import VolumeInfo
from virtops.xmlmodels import doc as X
from virtops.xmlmodels import read
from virtops.xmlmodels.domain import DomainXml
from virtops.xmlmodels.network import NetworkXml
from virtops.xmlmodels.pool import PoolXml
from virtops.xmlmodels.volume import VolumeXml


def test_rows_carry_their_models_fields_in_order():
    conn = libvirt.open("test:///default")  # its stock objects: network default, pool default-pool
    pool = conn.storagePoolLookupByName("default-pool")
    if "rows-a.img" not in pool.listVolumes():
        pool.createXML("<volume><name>rows-a.img</name><capacity>1048576</capacity></volume>", 0)
    for row, model in ((rows.network_rows(conn)[0], NetworkInfo), (rows.pool_rows(conn)[0], PoolInfo),
                       (rows.volume_rows(conn, pool)[0], VolumeInfo)):
        assert list(row) == list(model.model_fields), model.__name__
        assert model(**row).model_dump() == row


def test_listing_commands_import_no_pydantic():
    code = ("import sys; from virtops.cli import net, pool, vol; from virtops.ops import rows; "
            "from virtops.daemon import lookups; sys.exit('pydantic' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class _Broken:
    """A libvirt object whose XML nothing can read (what a listing must survive)."""

    def __init__(self, name: str):
        self._name = name

    def name(self):
        return self._name

    def XMLDesc(self, _flags=0):
        return "\x01\x02 not xml at all <<<"

    def UUIDString(self):
        return "00000000-0000-0000-0000-000000000000"

    def isActive(self):
        return 0

    def ID(self):
        return -1

    def autostart(self):
        return 0

    def isPersistent(self):
        return 1

    def info(self):
        return [0, 0, 0, 0]


def test_an_unreadable_object_is_a_row_with_the_reason_and_the_others_stay():
    from virtops.ops import vmrows

    conn = libvirt.open("test:///default")
    pool = conn.storagePoolLookupByName("default-pool")

    class Conn:  # the test driver's objects, and one broken one of each kind
        def listAllStoragePools(self, _flags=0):
            return [pool, _Broken("broken-pool")]

        def listAllNetworks(self, _flags=0):
            return conn.listAllNetworks() + [_Broken("broken-net")]

    pools = {r["name"]: r for r in rows.pool_rows(Conn())}
    assert pools["default-pool"]["unreadable"] is None and pools["broken-pool"]["unreadable"]
    assert PoolInfo(**pools["broken-pool"]).type == "unreadable"
    nets = {r["name"]: r for r in rows.network_rows(Conn())}
    assert nets["default"]["unreadable"] is None and nets["broken-net"]["mode"] == "unreadable"
    vm = vmrows._vm_row_or_unreadable(_Broken("broken-vm"), libvirt.VIR_DOMAIN_SHUTOFF, _Broken("x").XMLDesc())
    assert vm["name"] == "broken-vm" and vm["unreadable"]
    volume = rows._volume_row_or_unreadable("p", _Broken("broken.img"), rows.volume_xml_or_none(_Broken("v")),
                                            rows.VolumeUsers())
    assert volume["name"] == "broken.img" and volume["unreadable"]
    assert VolumeInfo(**volume).unreadable


# The listings parse with ElementTree (xmlmodels/read.py); the models and the rest of the core
# with lxml (xmlmodels/doc.py). Every golden input and every corpus document reads alike in both.
DATA = Path(__file__).parent.parent / "data"
DOCUMENTS = sorted((DATA / "xml").glob("*.in.xml")) + sorted((DATA / "corpus").glob("*.xml"))
MODELS = {"net": NetworkXml, "pool": PoolXml, "vol": VolumeXml, "dom": DomainXml}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_elementtree_reads_what_lxml_reads(path):
    text = path.read_text()
    light, full = read.parse(text), X.parse(text)
    assert isinstance(light, ElementTree.Element), "well-formed XML is ElementTree's"
    kind = path.name.split("-")[0]
    assert MODELS[kind](light).values() == MODELS[kind](full).values()
    if kind == "net":
        assert rows.network_fields(light) == rows.network_fields(full)
        assert rows.network_addresses(light) == rows.network_addresses(full)
    elif kind == "vol":
        assert rows.volume_row("p", light) == rows.volume_row("p", full)
    elif kind == "dom":
        assert vmrows.vm_row(light, 1, libvirt.VIR_DOMAIN_RUNNING) == vmrows.vm_row(full, 1, libvirt.VIR_DOMAIN_RUNNING)


def test_xml_only_recovery_reads_goes_to_lxml():
    """libvirt 9.0 writes a network's <domain name='a<b'/> back unescaped: not XML, but readable."""
    broken = "<network><name>n1</name><domain name='a<b'/></network>"
    node = read.parse(broken)
    assert not isinstance(node, ElementTree.Element)
    assert NetworkXml(node).name == "n1"
    with pytest.raises(X.UnreadableXML):
        read.parse("")
