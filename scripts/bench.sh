#!/usr/bin/env bash
# Run every benchmark in bench/, peers side by side, and keep the output in bench/results/.
#   scripts/bench.sh            all of them
#   scripts/bench.sh engine     only bench/engine_*.py
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q -e '.[bench]'
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
for script in bench/${1:-}*.py; do
  name=$(basename "$script" .py)
  echo "== $name"
  .venv/bin/python "$script" | tee "bench/results/$name-$stamp.txt"
done
