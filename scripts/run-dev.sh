#!/usr/bin/env bash
# run-dev.sh: run the daemon on this host against a local dev Consul.
# Starts `consul agent -dev` on 127.0.0.1:8500 unless something answers there
# already (stopped again on exit), then runs build/registrator in the
# foreground with -ip 127.0.0.1. Extra arguments go to registrator, before the
# URI. Consul's UI: http://127.0.0.1:8500/ui. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/registrator ] || make build
addr=127.0.0.1:8500
if ! curl -sf "http://$addr/v1/status/leader" >/dev/null 2>&1; then
  consul=$(scripts/get-consul.sh)
  log=$(mktemp -t consul-dev.XXXXXX.log)
  echo "run-dev: starting a dev Consul on $addr (log: $log)" >&2
  "$consul" agent -dev -client 127.0.0.1 -bind 127.0.0.1 -hcl 'enable_script_checks = true' >"$log" 2>&1 &
  consul_pid=$!
  trap 'kill "$consul_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 60); do
    leader=$(curl -sf "http://$addr/v1/status/leader" 2>/dev/null || true)
    [ -n "$leader" ] && [ "$leader" != '""' ] && break
    sleep 0.5
  done
fi
echo "run-dev: registrator -ip 127.0.0.1 $* consul://$addr" >&2
build/registrator -ip 127.0.0.1 "$@" "consul://$addr"
