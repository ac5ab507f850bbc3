#!/usr/bin/env bash
# fuzz.sh: run each fuzz target for FUZZTIME (default 20s).
#
# Go's fuzzing coordinator can fail a target with a bare "context deadline
# exceeded" at the end of -fuzztime having found nothing: it compares the
# -fuzztime context's error with its parent's and, when the deadline fires
# between the two reads, takes its own deadline for a failure. Such a run
# writes no failing input. This script tells that apart from a real
# failure: a target that ends so, without "Failing input written", is run
# once more, and says so; anything else fails at once, naming the target.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-20s}"
targets=(
  "FuzzServices ./docker"
  "FuzzSplitTags ./docker"
  "FuzzObjects ./docker"
  "FuzzEngineAnswers ./docker"
  "FuzzParse ./registry/kv"
  "FuzzZnode ./registry/zookeeper"
  "FuzzRecord ./registry/skydns2"
  "FuzzServices ./registry/consul"
  "FuzzLabel ./registry/skydns2"
  "FuzzOpen ./registry"
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  read -r name pkg <<<"$t"
  for attempt in 1 2; do
    echo "fuzz.sh: $name in $pkg for $FUZZTIME"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] && break
    if [ "$attempt" = 1 ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
      echo "fuzz.sh: $name: Go's coordinator reported its own -fuzztime deadline as a failure and no input failed; running it once more"
      continue
    fi
    echo "fuzz.sh: FAILED: $name in $pkg (exit $rc)" >&2
    exit "$rc"
  done
done
