#!/usr/bin/env bash
# Create .venv at the repository root and install matdiff; `--test` adds the test tools.
# torch==2.13.0 is installed first (a local CPU wheel here); every later install is constrained to it.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
.venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || pip install "torch==2.13.0"
pip install -c constraints.txt -e ".${extra}"
.venv/bin/python -c "import matdiff" || { echo "setup failed: matdiff does not import" >&2; exit 1; }
