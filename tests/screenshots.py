"""Screenshots of the web console's pages, kept as the test run's artifacts so a person can look:
$VIRTOPS_ARTIFACTS/screenshots/ when set (CI), else test-output/screenshots/ in the repository
(gitignored). scripts/test.sh prints where they are at the end of a run."""
from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def screenshots_dir() -> Path:
    root = os.environ.get("VIRTOPS_ARTIFACTS")
    return (Path(root) if root else REPO / "test-output") / "screenshots"


def save_screenshot(page, name: str) -> Path:
    """The whole page (not only the window) as NAME.png; a name is made of letters, digits, - and _
    (anything else becomes -), so a VM's name or a URL can be part of it."""
    folder = screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path
