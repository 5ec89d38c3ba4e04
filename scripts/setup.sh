#!/usr/bin/env bash
# Installs what DistAppGuard needs on a Debian machine: the tracers (strace, bpftrace),
# babeltrace2 for LTTng traces, a C compiler for the bundled workload, iproute2 for
# namespace tests, then the npm packages. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need strace strace
need bpftrace bpftrace
need babeltrace2 babeltrace2
need cc gcc
need ip iproute2
need nginx nginx
need redis-server redis-server
need redis-cli redis-tools
need psql postgresql-client
need wrk wrk
need chromium chromium
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)
[ -e /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
[ -e /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # the testbeds run their own nginx, redis and postgres inside network namespaces: keep the
  # packages' system services from starting on install (policy-rc.d 101 = "not now")
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$own_policy" -eq 1 ] && rm -f "$policy"
fi

# bpftrace attaches to syscall tracepoints through tracefs; mount it when we may
if [ "$(id -u)" -eq 0 ] && [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || echo "setup: could not mount tracefs; the eBPF collector will fall back to strace" >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
