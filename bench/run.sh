#!/usr/bin/env bash
# Runs a compiled benchmark with the open-files limit raised as far as this machine allows
# (thousands of concurrent streams need two descriptors each in the gateway), then `node "$@"`.
set -euo pipefail
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node "$@"
