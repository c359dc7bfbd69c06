#!/usr/bin/env bash
# Sets everything up, then runs the main job on a fresh lab host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/virtops demo "$@"
