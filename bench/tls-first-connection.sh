#!/usr/bin/env bash
# The first database connection of a fresh process per DB_SSLMODE (docs/benchmarks.md, "TLS on
# the first connection"): examples/tls_connect in a loop, one process per run, against the
# local PostgreSQL with TLS on, verify-full by its certificate's name (localhost).
#   bench/tls-first-connection.sh [RUNS] [--release]
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
RUNS=${1:-20}
profile=debug
[ "${2:-}" = --release ] && profile=release
ensure_rust
ensure_postgres
url="${PG_SERVER_URL/127.0.0.1/localhost}"
ca=${PG_CA_FILE:-$(psql "$PG_SERVER_URL" -qAtc 'show ssl_cert_file')}
cargo build --quiet --locked --example tls_connect $([ $profile = release ] && echo --release)
bin=$CARGO_TARGET_DIR/$profile/examples/tls_connect
for mode in disable require verify-full; do
  for _ in $(seq "$RUNS"); do "$bin" "$mode" "$url" "$ca"; done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    mode, first, second = line.split()
    runs[mode].append((float(first), float(second)))
for mode, r in runs.items():
    f = sorted(x[0] for x in r); s = sorted(x[1] for x in r)
    print(f"{mode:12} first: median {statistics.median(f):6.2f} ms (min {f[0]:.2f}, max {f[-1]:.2f})"
          f"   second: median {statistics.median(s):6.2f} ms   raw first: {[round(x[0], 2) for x in r]}")
'
