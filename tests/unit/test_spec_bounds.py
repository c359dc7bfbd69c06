"""Spec parsing is bounded: file size, nesting depth, alias expansion and node count each have a
limit, and a refusal is one sentence naming the limit and the value seen. Odd bytes and values
are refused in a sentence, never with a traceback."""
from __future__ import annotations

import pytest

from virtops.spec import document as S
from virtops.base.errors import VirtopsError
from virtops.spec.document import SpecError, load, loads


def refusal(text, name: str = "host.yaml") -> str:
    with pytest.raises(SpecError) as caught:
        loads(text, name)
    message = str(caught.value)
    assert "\n" not in message
    return message


def alias_bomb(levels: int, width: int = 9) -> str:
    """The billion laughs in YAML: each level is a list of `width` aliases of the one before."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_naming_the_node_limit():
    message = refusal(alias_bomb(9))
    assert f"{S.MAX_NODES}" in message and "alias" in message


def test_aliases_that_stay_within_the_limit_still_work():
    text = ("nic: &nic {network: default}\n"
            "vms:\n  - name: a\n    memory: 256M\n    nics: [*nic]\n  - name: b\n    memory: 256M\n    nics: [*nic]\n")
    with pytest.raises(SpecError, match=r"host.yaml:1: nic: is not a field here"):
        loads(text, "host.yaml")  # the anchor's home is no field, but the aliases were expanded fine


def test_a_recursive_alias_is_refused_in_a_sentence():
    message = refusal("pools: &p [*p]\n")
    assert "deeper" in message or "alias" in message


def test_deep_nesting_is_refused_naming_the_depth_limit():
    depth = S.MAX_DEPTH + 5
    message = refusal("pools: " + "[" * depth + "]" * depth + "\n")
    assert f"{S.MAX_DEPTH} levels" in message


def test_very_deep_nesting_is_refused_not_a_recursion_error():
    refusal("[" * 100_000 + "]" * 100_000)


def test_too_many_nodes_are_refused_naming_the_limit():
    text = "pools: [" + ", ".join(["{}"] * (S.MAX_NODES + 1)) + "]\n"
    message = refusal(text)
    assert f"{S.MAX_NODES}" in message


def test_a_file_over_the_size_limit_is_refused_naming_limit_and_size(tmp_path):
    big = tmp_path / "host.yaml"
    size = S.MAX_SPEC_BYTES + 1
    big.write_bytes(b"#" * size)
    with pytest.raises(SpecError) as caught:
        load(big)
    message = str(caught.value)
    assert f"{size} bytes" in message and S.MAX_SPEC_TEXT in message


def test_text_over_the_size_limit_is_refused_by_loads_too():
    assert S.MAX_SPEC_TEXT in refusal("#" * (S.MAX_SPEC_BYTES + 1))


def test_a_spec_that_is_not_utf8_is_refused_in_a_sentence(tmp_path):
    bad = tmp_path / "host.yaml"
    bad.write_bytes(b"pools:\n  - name: caf\xe9\n")
    with pytest.raises(SpecError) as caught:
        load(bad)
    assert "UTF-8" in str(caught.value) and str(bad) in str(caught.value)


@pytest.mark.parametrize("text", [
    "when: 2001-13-45\n",          # YAML's timestamp pattern, an impossible date
    "x: !!binary '%%%'\n",         # a broken binary scalar
    "x: !custom 1\n",              # a tag nobody constructs
    "pools: [{name: p, volumes: [{name: v, capacity: !!float .nan}]}]\n",
    "\x00",                         # a character YAML does not allow
    "? [a, b]\n: 1\n",             # a sequence as a key
])
def test_odd_yaml_is_refused_in_a_sentence(text):
    refusal(text)


def test_a_capacity_beyond_the_largest_size_is_refused_with_the_limit():
    message = refusal("pools:\n  - name: p\n    target: /srv/p\n    volumes:\n"
                      "      - name: v\n        capacity: 99999999999999999999999\n")
    assert "host.yaml:6: pools[0].volumes[0].capacity:" in message
    assert "at most" in message


def test_random_bytes_are_refused_as_virtops_errors():
    with pytest.raises(VirtopsError):
        loads(b"\xff\xfe\x00garbage", "host.yaml")


# -- an empty spec never prunes the whole host ------------------------------------------------------
def define_a_vm(host) -> None:
    host.conn.defineXML("<domain type='test'><name>keep</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
                        "<os><type>hvm</type></os></domain>")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "pools: []\nnetworks: []\nvms: []\n"])
def test_an_empty_spec_with_prune_is_refused_and_changes_nothing(test_host, tmp_path, monkeypatch, text):
    from virtops.spec import plan as P
    from tests.helpers import host_state

    monkeypatch.setenv("VIRTOPS_LOCK_DIR", str(tmp_path))
    define_a_vm(test_host)
    before = host_state(test_host.conn)
    loaded = loads(text, "empty.yaml")
    for attempt in (lambda: P.make_plan(test_host, loaded, prune=True), lambda: P.apply(test_host, loaded, prune=True)):
        with pytest.raises(VirtopsError) as caught:
            attempt()
        assert str(caught.value).startswith("empty.yaml: the spec lists no pools, networks or VMs, so prune=True would")
        assert "\n" not in str(caught.value)
    assert host_state(test_host.conn) == before


def test_an_empty_spec_without_prune_plans_nothing_to_delete(test_host):
    from virtops.spec import plan as P

    define_a_vm(test_host)
    plan = P.make_plan(test_host, loads("", "empty.yaml"))
    assert not [a for a in plan.actions if a.verb == "delete"] and plan.kept == ["vm keep"]
