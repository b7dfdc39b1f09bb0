#!/usr/bin/env bash
# Install paas-runbook with the lab and rehearse the reference runbook against it.
#   scripts/rehearse.sh [RUNBOOK]   (default runbooks/cf-vcloud-to-openstack.yml)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[lab]'
exec .venv/bin/runbook rehearse "${1:-runbooks/cf-vcloud-to-openstack.yml}"
