#!/usr/bin/env bash
# One command for a GPU slot (see benchmarks/gpu_session.py --help): OUT=... bash benchmarks/gpu_session.sh [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/gpu_session.py "$@"
