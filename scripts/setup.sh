#!/usr/bin/env bash
# Create .venv and install harkit into it. PyTorch 2.13.0 (CPU build) goes in first, so the
# project's torch range is already satisfied and pip never resolves a multi-GB CUDA build.
#   bash scripts/setup.sh          # runtime
#   bash scripts/setup.sh --dev    # plus test / lint tools (the report's browser test also
#                                  # needs Debian's chromium: .ci/run installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra="[mlflow,tune,export,serve]"  # tracking, tune, export and serve are part of a normal install
[ "${1:-}" = "--dev" ] && extra="[mlflow,tune,export,serve,dev]"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".${extra}"
.venv/bin/python -c "import torch, harkit; print('harkit', harkit.__version__, 'torch', torch.__version__)"
