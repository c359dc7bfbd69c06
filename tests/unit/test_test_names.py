"""pytest imports test files by their base name (tests/ has no packages): two files of one name in
tests/unit and tests/lab stop the whole suite at collection. Keep every test file's name unique."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_no_two_test_files_share_a_name():
    names = Counter(path.name for path in Path(__file__).parents[1].rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
