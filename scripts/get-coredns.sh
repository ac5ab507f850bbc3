#!/usr/bin/env bash
# get-coredns.sh: print the path of a CoreDNS binary for the skydns2
# end-to-end test, building it first if the cache does not have it.
#
# CoreDNS has no Debian package here, so it is built from its module at a
# release, through the Go module proxy, with only the plugins the test uses
# (bind, errors, log, etcd): a small main package that sets CoreDNS's directive
# list and calls coremain.Run, which is CoreDNS's documented way to build a
# custom server. The binary is cached under
# ${XDG_CACHE_HOME:-~/.cache}/registrator/coredns-<version>-p<plugins rev>/coredns; the first
# build takes a few minutes, later calls return at once. COREDNS_BIN, when set
# to an executable, wins.
set -euo pipefail

COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"

if [ -n "${COREDNS_BIN:-}" ] && [ -x "${COREDNS_BIN}" ]; then
  echo "${COREDNS_BIN}"
  exit 0
fi

# The plugin list is part of the cache key: change PLUGINS_REV with it.
PLUGINS_REV=2
cache="${XDG_CACHE_HOME:-$HOME/.cache}/registrator/coredns-${COREDNS_VERSION}-p${PLUGINS_REV}"
bin="${cache}/coredns"
if [ -x "$bin" ] && "$bin" -version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

go_cmd="${GO:-go}"
command -v "$go_cmd" >/dev/null || go_cmd=/usr/local/go/bin/go

mkdir -p "$cache"
work=$(mktemp -d "${cache}/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "get-coredns: building CoreDNS ${COREDNS_VERSION} with the etcd plugin..." >&2
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

cat > main.go <<'GO'
// A CoreDNS with the plugins the registrator tests use.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/etcd"
	_ "github.com/coredns/coredns/plugin/log"
)

func init() { dnsserver.Directives = []string{"bind", "errors", "log", "etcd"} }

func main() { coremain.Run() }
GO
printf 'module registrator.local/corednsbuild\n\ngo 1.26\n' > go.mod
"$go_cmd" get "github.com/coredns/coredns@${COREDNS_VERSION}" >&2
"$go_cmd" build -trimpath -ldflags "-s -w" -o coredns . >&2
./coredns -version >&2
mv -f coredns "$bin"
echo "get-coredns: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
