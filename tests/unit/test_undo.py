"""The undo primitive: inverses run newest first, and the final sentence tells the truth about
each: undone, or NOT undone with the reason (never "nothing was kept" when something was)."""
from __future__ import annotations

import libvirt
import pytest

from virtops.base.errors import VirtopsError
from virtops.base.undo import undo_on_failure


def test_inverses_run_newest_first_and_the_sentence_lists_them():
    ran = []
    with pytest.raises(VirtopsError) as err:
        with undo_on_failure() as undo:
            undo.add(lambda: ran.append("undefine"), "defined network n1")
            undo.add(lambda: ran.append("destroy"), "started network n1")
            raise VirtopsError("marking network n1 autostart failed: boom.")
    assert ran == ["destroy", "undefine"]
    assert str(err.value) == ("marking network n1 autostart failed: boom; nothing was kept "
                              "(undone: started network n1, defined network n1).")


def test_a_failed_inverse_is_reported_and_the_rest_still_run():
    ran = []

    def broken():
        raise libvirt.libvirtError("client socket is closed")

    with pytest.raises(VirtopsError) as err:
        with undo_on_failure() as undo:
            undo.add(lambda: ran.append("volume"), "created volume test/a.qcow2")
            undo.add(broken, "defined VM a")
            raise VirtopsError("starting VM a failed: no kernel.")
    assert ran == ["volume"]
    message = str(err.value)
    assert "nothing was kept" not in message
    assert "undone: created volume test/a.qcow2; NOT undone: defined VM a (client socket is closed)" in message


def test_no_step_done_leaves_the_error_as_it_is():
    with pytest.raises(VirtopsError) as err:
        with undo_on_failure():
            raise VirtopsError("defining pool p failed: bad.")
    assert str(err.value) == "defining pool p failed: bad."


def test_a_step_registered_before_it_that_never_took_effect_lists_nothing_undone():
    """An inverse registered before its step returns False when it finds the step was never done."""
    with pytest.raises(VirtopsError) as err:
        with undo_on_failure() as undo:
            undo.add(lambda: False, "defined pool p")
            raise VirtopsError("defining pool p failed: storage source conflict.")
    assert str(err.value) == "defining pool p failed: storage source conflict; nothing was kept."


def test_an_interrupt_undoes_too_and_passes_through():
    ran = []
    with pytest.raises(KeyboardInterrupt):
        with undo_on_failure() as undo:
            undo.add(lambda: ran.append("undone"), "defined network n1")
            raise KeyboardInterrupt
    assert ran == ["undone"]
