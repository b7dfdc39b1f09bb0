#!/usr/bin/env bash
# Install what the tests need and run the whole suite.
#   - Debian packages for the real servers the tests start (when run as root)
#   - a virtualenv in .venv with paas-runbook and its test extras
# Extra arguments go to pytest, e.g. scripts/test.sh tests/engine -x
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  pdns-server pdns-backend-pgsql   # PowerDNS for dns.* tests
  bind9 bind9-utils                # RFC 2136 + TSIG updates for dns.dual_domain
  rsync openssh-server openssh-client acl attr   # disks.sync over ssh
  nginx haproxy                    # gateway.switch
  ruby                             # independent check of the CC encryptor byte format
  chromium                         # renders the HTML report in a test
  gcc                              # builds the ccdb key-derivation accelerator (steps/ccdb/_kdf.c)
)
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  DEBIAN_PACKAGES+=(python3-dev)   # Python.h, for the same extension
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Installing server packages must not start their system services.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  # Debian's packages may have started their services anyway; the tests start their own.
  for svc in pdns named nginx haproxy ssh; do
    pkill -x "$svc" 2>/dev/null || true
  done
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
