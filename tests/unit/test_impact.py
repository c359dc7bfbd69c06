"""What a disruptive action costs, as the core tells it before acting (the confirmations of the web
console show it): on libvirt's test driver, whose running VM `test` has NIC aa:bb:cc:dd:ee:ff on
network default and disk vda. Only reads: the stock objects stay as they are."""
from __future__ import annotations

import pytest

from virtops.base.errors import InvalidInput, NeedsOption
from virtops.host import Host


@pytest.fixture
def stock():
    host = Host("test:///default")
    yield host
    host.close()


def test_stopping_a_network_names_the_running_guests_and_asks_for_force(stock):
    impact = stock.networks.impact("default", "stop")
    assert impact.guests == ["test"] and impact.option == "force"
    assert "test (aa:bb:cc:dd:ee:ff)" in impact.cost and "re-plugs" in impact.cost
    with pytest.raises(NeedsOption) as refused:  # the refusal stands on the same facts
        stock.networks.stop("default")
    assert "test (aa:bb:cc:dd:ee:ff)" in str(refused.value)
    assert stock.networks.info("default").active


def test_deleting_a_network_names_its_users(stock):
    impact = stock.networks.impact("default", "delete")
    assert impact.guests == ["test"] and impact.option == "force" and "test (running)" in impact.cost


def test_restarting_a_network_for_an_edit_names_the_guests_it_cuts_off_for_a_moment(stock):
    """The Edit form's restart asks with this: `net edit --yes` needs no force (it re-attaches the NICs)."""
    impact = stock.networks.impact("default", "restart")
    assert impact.guests == ["test"] and impact.option is None
    assert "test (aa:bb:cc:dd:ee:ff) lose their connection for a moment" in impact.cost and "re-attached" in impact.cost


def test_a_pool_no_vm_uses_costs_no_option(stock):
    for action in ("stop", "delete"):
        impact = stock.pools.impact("default-pool", action)
        assert impact.guests == [] and impact.option is None and "default-pool" in impact.cost


def test_vm_destroy_delete_and_detach(stock):
    destroy = stock.vms.impact("test", "destroy")
    assert destroy.guests == ["test"] and destroy.option is None and "power cut" in destroy.cost
    assert stock.vms.impact("test", "delete").option == "force"
    disk = stock.vms.impact("test", "detach-disk", "vda")
    assert disk.cost == ("running guest test loses disk vda (/guest/diskimage1) at once; what it has not written "
                         "to it is lost and programs using it fail.")
    nic = stock.vms.impact("test", "detach-nic", "AA:BB:CC:DD:EE:FF")
    assert nic.subject == "NIC aa:bb:cc:dd:ee:ff (on default) of test"


def test_unknown_action_or_device_is_refused_in_one_sentence(stock):
    with pytest.raises(InvalidInput, match=r"^target: test has no disk 'vdz'; its disks are vda\.$"):
        stock.vms.impact("test", "detach-disk", "vdz")
    with pytest.raises(InvalidInput, match="give stop, delete or restart"):
        stock.networks.impact("default", "undefine")


def test_deleting_a_running_vm_needs_force_in_the_core_s_words(stock):
    with pytest.raises(NeedsOption) as refused:
        stock.vms.delete("test")
    assert refused.value.option == "force" and "--force" not in str(refused.value)
    assert stock.vms.info("test").running


def test_deleting_a_pool_with_volumes_offers_the_two_ways_its_refusal_names():
    """The confirmation's choices are the refusal's ways out, on the same facts: delete the volumes
    too, or keep the data and remove only the pool definition; each is the option and its value."""
    host = Host("test:///default")
    try:
        host.volumes.create("default-pool", "kept", "1M")
        impact = host.pools.impact("default-pool", "delete")
        with pytest.raises(NeedsOption) as refused:
            host.pools.delete("default-pool")
        ways = [(way.option, way.value, way.does) for way in impact.ways]
        assert ways == [(way.term.field, way.term.value, way.does) for way in refused.value.ways] == [
            ("with_volumes", True, "delete the volumes too"), ("keep_data", True, "keep the data, remove only the pool definition")]
        assert impact.option is None and "holds 1 volume(s)" in impact.cost
        assert [v.name for v in host.volumes.list("default-pool")] == ["kept"]
    finally:  # the test driver's default host is one per process: the stock objects stay as they were
        host.volumes.delete("default-pool/kept")
        host.close()
