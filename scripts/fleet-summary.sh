#!/bin/sh
# fleet-summary.sh LOG: the median and worst of each convergence figure
# that `make fleet` logged ("<what>: converged <d> after the change|the
# agent answered", and "<what>: answered <d> after the reconnection"), over
# every run in LOG. Names of servers are folded ("server-2" -> "server-N"),
# since each run's leader differs.
set -eu
sed -n -E -e 's/^ *[a-z_]+\.go:[0-9]+: (.*): converged ([0-9.]+)(m?s) after .*/\1\t\2 \3/p' \
	-e 's/^ *[a-z_]+\.go:[0-9]+: (.*): answered ([0-9.]+)(m?s) after the reconnection.*/\1, answered\t\2 \3/p' "$1" |
	sed -E 's/server-[0-9]/server-N/' |
	awk -F'\t' '{ split($2, v, " "); s = v[1]; if (v[2] == "ms") s /= 1000; print $1 "\t" s }' |
	sort -t "$(printf '\t')" -k1,1 -k2,2n |
	awk -F'\t' '
		function flush() { if (n) printf "%-70s runs %d  median %.2f s  worst %.2f s\n", key, n, (n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2), a[n] }
		$1 != key { flush(); key = $1; n = 0 }
		{ a[++n] = $2 }
		END { flush() }'
