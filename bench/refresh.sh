#!/usr/bin/env bash
# Scheduled-refresh benchmark (docs/benchmarks.md): N (10,000) connections due within the
# window, a local fake provider answering each refresh after DELAY_MS (50) in its own process,
# one run of the token-refresh code at REFRESH_CONCURRENCY (64). Prints wall time, provider
# calls, the ratio to the bound N x delay / concurrency, and the peak memory of the process.
#   bench/refresh.sh
# Knobs: N (10000), CONCURRENCY (64), DELAY_MS (50), PORT (8791), SKIP_BUILD=1, BIN_DIR.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-64}
PORT=${PORT:-8791}
export DELAY_MS=${DELAY_MS:-50}

ensure_rust
ensure_postgres
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "release build (keyledger, bench_refresh)"
  cargo build --release --locked --bin keyledger --example bench_refresh
fi
# The target directory may be shared with other checkouts that build the same binaries:
# run private copies, taken right after this build.
# BIN_DIR with SKIP_BUILD=1 runs binaries built elsewhere (e.g. an older commit's, for a
# before/after): it must hold `keyledger` and the example under `examples/`.
BIN=${BIN_DIR:-$CACHE/bench-bin/$(basename "$0" .sh)}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  mkdir -p "$BIN/examples"
  for b in keyledger examples/bench_refresh; do cp "$CARGO_TARGET_DIR/release/$b" "$BIN/$b"; done
fi

DB=keyledger_bench_refresh
psql "$PG_SERVER_URL" -qc "drop database if exists $DB with (force)" >/dev/null
psql "$PG_SERVER_URL" -qc "create database $DB" >/dev/null
base=${PG_SERVER_URL%%\?*}
export DATABASE_URL="${base%/*}/$DB"
ENCRYPTION_KEYS=$("$BIN/keyledger" keys generate)
# The fake provider listens on 127.0.0.1: the outbound address check refuses loopback unless
# told otherwise, as in scripts/dev and the tests (builds older than that check ignore it).
export ENCRYPTION_KEYS RUST_LOG=warn LOG_FORMAT=json REFRESH_CONCURRENCY=$CONCURRENCY OUTBOUND_ALLOW_PRIVATE=true
"$BIN/keyledger" migrate up >/dev/null

"$BIN/examples/bench_refresh" provider "$PORT" &
PROVIDER=$!
CLEANUP+=("kill $PROVIDER 2>/dev/null")
for _ in $(seq 1 50); do port_open 127.0.0.1 "$PORT" && break; sleep 0.1; done

say "seeding $N due connections and running one scheduled refresh at concurrency $CONCURRENCY"
"$BIN/examples/bench_refresh" run "$N" "http://127.0.0.1:$PORT/token" | grep RESULT
