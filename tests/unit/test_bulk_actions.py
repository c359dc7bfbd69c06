"""fleet.actions.each_vm, the bulk actions of the web console's VM list, on libvirt's test driver:
one result per VM, each under the core's own rules; a refusal never stops the others; delete keeps
the volumes unless asked, and never stops a running VM."""
from __future__ import annotations

import pytest

from tests.helpers import dir_pool_element, volume_element
from virtops.base.errors import InvalidInput
from virtops.fleet.actions import each_vm
from virtops.ops.domain import DiskSpec, DomainSpec
from virtops.xmlmodels import doc as X


@pytest.fixture
def host(test_host):
    """A running VM "run", and stopped ones: b1 with a volume of pool p, b2 without."""
    pool = test_host.conn.storagePoolDefineXML(X.to_string(dir_pool_element("p")))
    pool.create()
    pool.createXML(X.to_string(volume_element("b1-disk", 1 << 20, "raw")))
    test_host.conn.defineXML(DomainSpec(name="b1", disks=[DiskSpec(target="vda", pool="p", volume="b1-disk")]).to_xml())
    test_host.conn.defineXML(DomainSpec(name="b2").to_xml())
    test_host.conn.defineXML(DomainSpec(name="run").to_xml()).create()
    return test_host


def results(found) -> dict:
    return {r.vm: (r.done, r.error) for r in found}


def test_start_answers_per_vm_and_goes_on_past_a_refusal(host):
    found = each_vm(host, "start", ["run", "b2", "nope", "b2"])
    assert [r.vm for r in found] == ["run", "b2", "nope"]  # each once, in the order given
    assert results(found)["b2"] == ("started", None)
    assert results(found)["run"] == (None, "vm: run is already running.")
    assert found[2].error and "nope" in found[2].error and not found[2].ok
    assert host.conn.lookupByName("b2").isActive()


def test_shutdown_of_a_stopped_vm_is_its_own_refusal(host):
    found = results(each_vm(host, "shutdown", ["b1", "run"]))
    assert found["b1"] == (None, "vm: b1 is not running, so there is nothing to shut down.")
    assert found["run"] == ("asked to shut down", None)


def test_delete_keeps_volumes_unless_asked_and_refuses_a_running_vm(host):
    found = results(each_vm(host, "delete", ["b1", "run"]))
    assert found["b1"] == ("deleted; its volumes stay", None)
    assert found["run"][1].startswith("vm: run is running")
    assert host.conn.lookupByName("run").isActive()
    assert host.conn.storagePoolLookupByName("p").storageVolLookupByName("b1-disk")
    host.conn.defineXML(DomainSpec(name="b1", disks=[DiskSpec(target="vda", pool="p", volume="b1-disk")]).to_xml())
    assert results(each_vm(host, "delete", ["b1"], remove_storage=True))["b1"] == ("deleted with its volumes p/b1-disk", None)
    assert "b1-disk" not in host.conn.storagePoolLookupByName("p").listVolumes()


def test_an_unknown_action_is_refused_by_name(host):
    with pytest.raises(InvalidInput) as refused:
        each_vm(host, "reboot", ["b1"])
    assert refused.value.field == "action"
