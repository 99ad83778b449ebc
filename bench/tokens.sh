#!/usr/bin/env bash
# Warm-path benchmark of GET /v1/tokens/{id} (docs/benchmarks.md): N connections (10,000)
# seeded through the real code path with real ciphertexts, `keyledger serve` (release build,
# the same routers Lambda runs), wrk at concurrency 1 and 32; then, with PEER=1, the FastAPI
# reference (../shared/bench/peer-fastapi) on the same PostgreSQL, back to back.
#
#   bench/tokens.sh                 # keyledger only
#   PEER=1 bench/tokens.sh          # keyledger, then the peer
# Knobs: N (10000), DURATION (15 s), PORT (8790), POOL (DB_POOL_MAX, 4), OUT, PEER_DIR,
# SKIP_BUILD=1 (use the release binaries already built), BIN_DIR (with SKIP_BUILD=1: binaries built elsewhere),
# SEED_PROVIDER_DATA (a JSON object every seeded connection carries as provider_data; none by default).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

N=${N:-10000}
DURATION=${DURATION:-15}
PORT=${PORT:-8790}
POOL=${POOL:-4}
OUT=${OUT:-$CACHE/bench-tokens}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/bench/peer-fastapi}
mkdir -p "$OUT"

ensure_rust
ensure_postgres
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl

DB=keyledger_bench_tokens
psql "$PG_SERVER_URL" -qc "drop database if exists $DB with (force)" >/dev/null
psql "$PG_SERVER_URL" -qc "create database $DB" >/dev/null
base=${PG_SERVER_URL%%\?*}
export DATABASE_URL="${base%/*}/$DB"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "release build (keyledger, seed_connections)"
  cargo build --release --locked --bin keyledger --example seed_connections
fi
# The target directory may be shared with other checkouts that build the same binaries:
# run private copies, taken right after this build.
# BIN_DIR with SKIP_BUILD=1 runs binaries built elsewhere (e.g. an older commit's, for a
# before/after): it must hold `keyledger` and the example under `examples/`.
BIN=${BIN_DIR:-$CACHE/bench-bin/$(basename "$0" .sh)}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  mkdir -p "$BIN/examples"
  for b in keyledger examples/seed_connections; do cp "$CARGO_TARGET_DIR/release/$b" "$BIN/$b"; done
fi
ENCRYPTION_KEYS=$("$BIN/keyledger" keys generate)
export ENCRYPTION_KEYS RUST_LOG=warn LOG_FORMAT=json DB_POOL_MAX=$POOL LISTEN_ADDR=127.0.0.1:$PORT
"$BIN/keyledger" migrate up >/dev/null
say "seeding $N connections"
"$BIN/examples/seed_connections" "$N" "$OUT"

"$BIN/keyledger" serve 2>"$OUT/serve.log" &
SERVER=$!
CLEANUP+=("kill $SERVER 2>/dev/null")
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
KEY=$(cat "$OUT/api_key.txt")
ID=$(head -1 "$OUT/connection_ids.txt")
curl -fs -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/tokens/$ID" | grep -q '"access_token":"at_' ||
  { echo "smoke check failed" >&2; exit 1; }

# Other work on a 2-core machine distorts the numbers: wait (up to QUIET_WAIT s) until the host
# is at most QUIET_MAX % busy over 5 s, and print what it was.
busy_pct() {
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 _ </proc/stat; a=$((a1 + a2 + a3 + a6 + a7)); local ta=$((a + a4 + a5))
  sleep "$1"
  read -r _ b1 b2 b3 b4 b5 b6 b7 _ </proc/stat; b=$((b1 + b2 + b3 + b6 + b7)); local tb=$((b + b4 + b5))
  echo $(((b - a) * 100 / (tb - ta)))
}
wait_quiet() {
  local waited=0 busy
  while :; do
    busy=$(busy_pct 5)
    if [ "$busy" -le "${QUIET_MAX:-15}" ] || [ "$waited" -ge "${QUIET_WAIT:-300}" ]; then
      say "host busy before the run: ${busy}%"; return
    fi
    waited=$((waited + 5))
  done
}

# CPU time (ticks) of a set of processes: the server, and its PostgreSQL backends.
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)

say "warm-up"
BENCH_OUT=$OUT wrk -t2 -c32 -d3s -s bench/tokens.lua "http://127.0.0.1:$PORT" >/dev/null
for c in 1 32; do
  t=$((c == 1 ? 1 : 2))
  wait_quiet
  say "keyledger: wrk -t$t -c$c -d${DURATION}s"
  PG_PIDS=$(psql "$PG_SERVER_URL" -qAtc "select pid from pg_stat_activity where datname = '$DB'")
  a0=$(ticks "$SERVER"); p0=$(ticks $PG_PIDS)
  BENCH_OUT=$OUT BENCH_NAME="keyledger-c$c" wrk -t$t -c$c -d"${DURATION}s" --latency -s bench/tokens.lua \
    "http://127.0.0.1:$PORT" | tee "$OUT/wrk-keyledger-c$c.txt" | grep -E "RESULT|Latency|Req/Sec|requests in"
  a1=$(ticks "$SERVER"); p1=$(ticks $PG_PIDS)
  reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$OUT/wrk-keyledger-c$c.txt")
  awk -v a=$((a1 - a0)) -v p=$((p1 - p0)) -v n="$reqs" -v hz="$HZ" \
    'BEGIN { printf "CPU per request: keyledger %.3f ms, PostgreSQL %.3f ms\n", a * 1000 / hz / n, p * 1000 / hz / n }'
  echo "postgres backends: $(echo $PG_PIDS | wc -w)"
  ps -o rss=,cmd= -p "$SERVER" | awk '{printf "keyledger serve RSS: %.1f MiB\n", $1/1024}'
done
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

if [ "${PEER:-0}" = 1 ]; then
  # The peer writes its venv and outputs next to itself: run a private copy.
  [ -x "$PEER_DIR/bench.sh" ] || { echo "no peer at $PEER_DIR (set PEER_DIR)" >&2; exit 1; }
  PEER_COPY=$CACHE/peer-fastapi
  mkdir -p "$PEER_COPY"
  cp -r "$PEER_DIR"/. "$PEER_COPY"/ && chmod -R u+w "$PEER_COPY"
  for c in 1 32; do
    t=$((c == 1 ? 1 : 2))
    skip=$([ "$c" = 1 ] && echo 0 || echo 1)
    say "peer-fastapi: wrk -t$t -c$c -d${DURATION}s"
    (cd "$PEER_COPY" && ENDPOINTS=tokens CONCURRENCY=$c WRK_THREADS=$t DURATION=$DURATION SKIP_SEED=$skip N=$N \
      ./bench.sh 2>&1 | tee "$OUT/peer-c$c.txt" | grep -E "RESULT|tokens|req/s" || true)
  done
fi
