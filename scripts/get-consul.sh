#!/usr/bin/env bash
# get-consul.sh: print the path of a Consul binary for the tests and for
# `make run`, building it first if the cache does not have it.
#
# Consul publishes no Debian package, and these machines reach only the Go
# module proxy, so Consul is built from its module at a release. The binary is
# cached under ${XDG_CACHE_HOME:-~/.cache}/registrator/consul-<version>/consul:
# the first build takes about 10 minutes and 3 GB of memory (2 cores), later
# calls return at once. CONSUL_BIN, when set to an executable, wins.
#
# Why a wrapper module: `go install github.com/hashicorp/consul@v1.22.7` is
# refused because Consul's go.mod has replace directives. A module that
# requires Consul and builds its main package ignores those, so its nested
# modules (api, sdk, ...) come from the proxy at the versions Consul asks for.
# Two adjustments make that build: consul/api is raised to the release that
# matches the Consul tree (the one Consul asks for lacks fields its CLI uses),
# and Consul's `exclude` directives, which only apply in the main module, are
# copied into the wrapper.
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-v1.22.7}"
CONSUL_API_VERSION="${CONSUL_API_VERSION:-v1.34.1}" # change together with CONSUL_VERSION

if [ -n "${CONSUL_BIN:-}" ] && [ -x "${CONSUL_BIN}" ]; then
  echo "${CONSUL_BIN}"
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/registrator/consul-${CONSUL_VERSION}"
bin="${cache}/consul"
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

go_cmd="${GO:-go}"
command -v "$go_cmd" >/dev/null || go_cmd=/usr/local/go/bin/go
"$go_cmd" version >/dev/null

mkdir -p "$cache"
work=$(mktemp -d "${cache}/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "get-consul: building Consul ${CONSUL_VERSION} (about 10 minutes the first time)..." >&2
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Consul's own go.mod, downloaded (and checksum-verified) through the proxy.
gomod=$("$go_cmd" mod download -json "github.com/hashicorp/consul@${CONSUL_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$gomod" ] || { echo "get-consul: cannot download github.com/hashicorp/consul@${CONSUL_VERSION}" >&2; exit 1; }

{
  echo "module registrator.local/consulbuild"
  echo
  awk '$1 == "go" { print; exit }' "$gomod"
  echo
  # every exclude directive, single-line or block
  awk '
    /^exclude[[:space:]]*\(/ { inblock = 1 }
    inblock || /^exclude[[:space:]]/ { print }
    inblock && /^\)/ { inblock = 0 }
  ' "$gomod"
} > go.mod

"$go_cmd" get "github.com/hashicorp/consul@${CONSUL_VERSION}" "github.com/hashicorp/consul/api@${CONSUL_API_VERSION}" >&2
"$go_cmd" build -trimpath -ldflags "-s -w" -o consul github.com/hashicorp/consul >&2
./consul version >&2
mv -f consul "$bin"
echo "get-consul: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
