#!/usr/bin/env bash
# Runs the full test suite against real libvirt daemons in lab hosts. Fails if any test was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
report=$(mktemp /tmp/virtops-junit.XXXXXX.xml)
export VIRTOPS_REQUIRE_LAB=1
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
status=0
# The web console's pages as this run's browser tests see them (tests/screenshots.py): a fresh folder.
screenshots="${VIRTOPS_ARTIFACTS:-$PWD/test-output}/screenshots"
rm -rf "$screenshots"
# The layers of the package (pyproject.toml [tool.importlinter]; docs/architecture.md).
.venv/bin/lint-imports --no-cache || status=1
# Names used but never defined, imports never used (the package, the benchmarks and the tests).
.venv/bin/python -m pyflakes src bench tests || status=1
.venv/bin/python -m pytest -q -rs --junitxml="$report" "$@" || status=$?
.venv/bin/python - "$report" <<'PY' || status=1
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
skipped = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
           if case.find("skipped") is not None]
lab = [name for name in skipped if name.startswith("tests.lab.")]
if lab:
    print(f"FAIL: {len(lab)} lab-host tests were skipped; they must run:", *lab, sep="\n  ")
    sys.exit(1)
print(f"lab-host tests: none skipped ({len(skipped)} skipped elsewhere)")
PY
rm -f "$report"
if [ -d "$screenshots" ]; then
  echo "screenshots of the web console: $screenshots ($(find "$screenshots" -name '*.png' | wc -l) pages)"
fi
exit $status
