#!/usr/bin/env bash
# Benchmark of POST /v1/licenses/validate (issue 5): keyledger's release `license-validate`
# binary (the same router Lambda runs, served by its local HTTP server) against the FastAPI
# peer in ../shared/bench/peer-fastapi, back to back, on the same throwaway PostgreSQL
# cluster, with the same wrk script (the peer's wrk/peer.lua, validate mode).
#
#   bench/licenses-validate.sh            # N=10000 licenses, one installation each
#
# Steps: (1) tools: wrk, PostgreSQL binaries, release build; (2) a throwaway cluster (default
# settings as the peer's own: fsync and synchronous_commit on, max_connections=200);
# (3) seed keyledger's database through the real event-sourced path: a SQLite file in the old
# license service's format, imported with `keyledger import-licenses`; (4) for c=1 and c=32:
# warm-up, wait for a quiet host, wrk, CPU per process group; (5) the peer's bench.sh on the
# same cluster (its own seed, its own quiet-host check) for the same two concurrencies;
# (6) a table with the ratio. Stops what it started by PID.
#
# Knobs: N (10000), DURATION (15), WARMUP (3), POOL (DB_POOL_MAX of the keyledger server, 8),
# OUT (~/.cache/keyledger/bench-licenses), PG_DIR, PG_PORT (55440), PORT (8711),
# PEER_PORT (8712), PEER_SRC, PEER (1 = also run the peer), KEYLEDGER (1 = measure keyledger),
# QUIET_MAX (10 % host busy), QUIET_SECS (5), QUIET_WAIT (300), NOISY_RETRIES (re-runs of a
# noisy peer measurement, 1), SKIP_SEED, SKIP_BUILD=1 with BIN_DIR (a directory holding
# already built release `license-validate` and `keyledger` binaries, e.g. copies of an older
# commit's build for a before/after: skips cargo, whose build lock another build can hold).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/keyledger/target}
N=${N:-10000}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
POOL=${POOL:-8}
OUT=${OUT:-$HOME/.cache/keyledger/bench-licenses}
PG_DIR=${PG_DIR:-/tmp/kl-licenses-benchpg}
PG_PORT=${PG_PORT:-55440}
PORT=${PORT:-8711}
PEER_PORT=${PEER_PORT:-8712}
PEER=${PEER:-1}
KEYLEDGER=${KEYLEDGER:-1}
NOISY_RETRIES=${NOISY_RETRIES:-1}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_SECS=${QUIET_SECS:-5}
QUIET_WAIT=${QUIET_WAIT:-300}
SKIP_SEED=${SKIP_SEED:-0}
for candidate in "${PEER_SRC:-}" "$ROOT/../shared/bench/peer-fastapi" "$ROOT/../../shared/bench/peer-fastapi"; do
  [[ -n "$candidate" && -f "$candidate/bench.sh" ]] && { PEER_SRC=$(cd "$candidate" && pwd); break; }
done
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)}
export PATH="$PGBIN:$PATH"
mkdir -p "$OUT"

SERVER_PID="" PG_PID="" STARTED_PG=0
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ "$STARTED_PG" == 1 && -n "$PG_PID" ]] && kill -0 "$PG_PID" 2>/dev/null; then
    log "stopping the throwaway PostgreSQL (postmaster $PG_PID)"; kill -INT "$PG_PID"
    for _ in $(seq 1 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# (1) tools -------------------------------------------------------------------------------
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v psql >/dev/null && [[ -x "$PGBIN/initdb" ]] || die "PostgreSQL binaries not found (PGBIN)"
BIN_DIR=${BIN_DIR:-$CARGO_TARGET_DIR/release}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "building license-validate and keyledger (release, $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release -q -p license-validate -p keyledger)
fi
SERVER_BIN=$BIN_DIR/license-validate
CLI=$BIN_DIR/keyledger
[[ -x "$SERVER_BIN" && -x "$CLI" ]] || die "no release binaries in $BIN_DIR"

# (2) PostgreSQL --------------------------------------------------------------------------
as_pg() { if [[ "$(id -u)" == 0 ]]; then (cd /tmp && runuser -u postgres -- "$@"); else "$@"; fi; }
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  if [[ ! -f "$PG_DIR/PG_VERSION" ]]; then
    mkdir -p "$PG_DIR"; [[ "$(id -u)" == 0 ]] && chown postgres: "$PG_DIR"; chmod 700 "$PG_DIR"
    as_pg "$PGBIN/initdb" -D "$PG_DIR" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
  fi
  log "starting throwaway PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PGBIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c max_connections=200" start >/dev/null
  PG_PID=$(head -1 "$PG_DIR/postmaster.pid"); STARTED_PG=1
else
  PG_PID=$(head -1 "$PG_DIR/postmaster.pid" 2>/dev/null || true)
fi
SERVER_URL="postgres://postgres@127.0.0.1:$PG_PORT"
for db in keyledger_bench peer_bench; do
  [[ "$(psql "$SERVER_URL/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" == 1 ]] ||
    psql "$SERVER_URL/postgres" -qc "CREATE DATABASE $db"
done
PG_SETTINGS=$(psql "$SERVER_URL/postgres" -tAc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('server_version','max_connections','shared_buffers','synchronous_commit','fsync')")

# (3) keyledger seed through the real path --------------------------------------------------
if [[ ! -f "$OUT/secrets.env" ]]; then
  { echo "export ENCRYPTION_KEYS='$("$CLI" keys generate)'"; echo "export LICENSE_KEY_PEPPER='$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')'"; echo "export LICENSE_SIGNING_KEYS='$("$CLI" keys generate-signing 2>/dev/null || true)'"; } >"$OUT/secrets.env"
  chmod 600 "$OUT/secrets.env"
fi
# shellcheck disable=SC1091
source "$OUT/secrets.env"
export DATABASE_URL="$SERVER_URL/keyledger_bench" LOG_FORMAT=json RUST_LOG=warn
if ! "$CLI" migrate up >/dev/null 2>"$OUT/migrate.err"; then
  log "the migrations changed since the last seed ($(tail -1 "$OUT/migrate.err")); recreating keyledger_bench"
  psql "$SERVER_URL/postgres" -qc "DROP DATABASE keyledger_bench WITH (FORCE)" -c "CREATE DATABASE keyledger_bench"
  "$CLI" migrate up >/dev/null
fi
have=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM installations")
if [[ "$SKIP_SEED" != 1 && "$have" -lt "$N" ]]; then
  log "seeding $N licenses with one installation each (SQLite file in the old service's format -> keyledger import-licenses)"
  rm -f "$OUT/old-service.db"
  python3 - "$OUT/old-service.db" "$OUT/licenses.txt" "$N" <<'PY'
import secrets, sqlite3, sys
path, keys, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(path)
db.executescript("""
CREATE TABLE licenses (id INTEGER PRIMARY KEY, email TEXT, license_key TEXT UNIQUE, expiry_date TEXT, created_at TEXT, status TEXT);
CREATE TABLE installations (id INTEGER PRIMARY KEY, email TEXT, installation_id TEXT, activated_at TEXT, last_seen TEXT);""")
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
with open(keys, "w") as out:
    for i in range(1, n + 1):
        raw = "".join(secrets.choice(alphabet) for _ in range(30))
        key = "-".join(raw[j:j + 5] for j in range(0, 30, 5))
        email, inst = f"user{i:05d}@example.com", f"inst-{i:05d}"
        db.execute("INSERT INTO licenses VALUES (?, ?, ?, '2099-12-31', '2025-01-01 00:00:00', 'active')", (i, email, key))
        db.execute("INSERT INTO installations VALUES (?, ?, ?, '2025-01-02 00:00:00', NULL)", (i, email, inst))
        out.write(f"{key}\t{inst}\n")
db.commit()
PY
  "$CLI" import-licenses --sqlite "$OUT/old-service.db" >"$OUT/import.json"
  log "import: $(tr -d ' \n' <"$OUT/import.json")"
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE"
fi
[[ -s "$OUT/licenses.txt" ]] || die "no $OUT/licenses.txt (run once without SKIP_SEED)"

# (4) keyledger under wrk -------------------------------------------------------------------
host_busy_pct() {
  local a0 i0 a1 i1
  read -r a0 i0 < <(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat); sleep "$1"
  read -r a1 i1 < <(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  echo $(( ((a1 - a0) - (i1 - i0)) * 100 / ((a1 - a0) > 0 ? (a1 - a0) : 1) ))
}
QUIET_LOG=()
wait_quiet() { # label
  local waited=0 busy
  while :; do
    busy=$(host_busy_pct "$QUIET_SECS")
    if (( busy <= QUIET_MAX )); then QUIET_LOG+=("$1: host ${busy}% busy over ${QUIET_SECS}s before the run (waited ${waited}s)"); return 0; fi
    if (( waited >= QUIET_WAIT )); then QUIET_LOG+=("$1: host still ${busy}% busy after ${waited}s: measured anyway"); return 0; fi
    (( waited == 0 )) && log "host is ${busy}% busy; waiting for it to go quiet"
    waited=$((waited + QUIET_SECS))
  done
}
ticks_of_tree() { # CPU ticks of a process and its live children
  local total=0 v p
  [[ -n "$1" ]] || { echo 0; return; }
  v=$(awk '{sub(/.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0); total=$v
  for p in $(pgrep -P "$1" 2>/dev/null); do
    v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0); total=$((total + v))
  done
  echo "$total"
}
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
HZ=$(getconf CLK_TCK)
RESULTS=()
measure() { # label concurrency threads
  local label=$1 c=$2 t=$3 s0 p0 h0 s1 p1 h1 t0 t1 res
  PEER_WRK_MODE=validate PEER_BENCH_OUT="$OUT" PEER_WRK_NAME="$label-warmup" \
    wrk -t"$t" -c"$c" -d"${WARMUP}s" -s "$PEER_SRC/wrk/peer.lua" "http://127.0.0.1:$PORT" >/dev/null
  wait_quiet "$label"
  s0=$(ticks_of_tree "$SERVER_PID"); p0=$(ticks_of_tree "$PG_PID"); h0=$(busy_ticks); t0=$(date +%s.%N)
  PEER_WRK_MODE=validate PEER_BENCH_OUT="$OUT" PEER_WRK_NAME="$label" \
    wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$PEER_SRC/wrk/peer.lua" "http://127.0.0.1:$PORT" >"$OUT/wrk-$label.txt"
  t1=$(date +%s.%N); s1=$(ticks_of_tree "$SERVER_PID"); p1=$(ticks_of_tree "$PG_PID"); h1=$(busy_ticks)
  res=$(grep '^RESULT ' "$OUT/wrk-$label.txt" | tail -1)
  res="$res $(awk -v d="$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN{print (b - a) * hz}')" -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v h=$((h1 - h0)) \
    'BEGIN{printf "app_cpu_pct=%.0f pg_cpu_pct=%.0f host_cpu_pct=%.0f", s/d*100, p/d*100, h/d*100}') load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
  log "$res"
  RESULTS+=("$res")
}
log "starting license-validate (release, DB_POOL_MAX=$POOL) on 127.0.0.1:$PORT"
DB_POOL_MAX=$POOL LISTEN_ADDR="127.0.0.1:$PORT" "$SERVER_BIN" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
read -r KEY INST < <(head -1 "$OUT/licenses.txt")
VALID=$(curl -s -H 'content-type: application/json' -d "{\"license_key\":\"$KEY\",\"installation_id\":\"$INST\"}" "http://127.0.0.1:$PORT/v1/licenses/validate")
[[ "$VALID" == *'"code":"VALID"'* ]] || die "smoke check failed: $VALID"
NOTFOUND=$(curl -s -H 'content-type: application/json' -d '{"license_key":"NOPE","installation_id":"x"}' "http://127.0.0.1:$PORT/v1/licenses/validate")
[[ "$NOTFOUND" == *'"code":"NOT_FOUND"'* && "$NOTFOUND" == *'"license":null'* ]] || die "smoke check failed: $NOTFOUND"
log "sample answer: $VALID"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ "$KEYLEDGER" == 1 ]]; then
  measure keyledger-c1 1 1
  measure keyledger-c32 32 2
fi
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

# (5) the peer, same cluster, same load -------------------------------------------------------
PEER_ROWS=()
if [[ "$PEER" == 1 ]]; then
  mkdir -p "$OUT/peer-src"
  (cd "$PEER_SRC" && tar --exclude=.venv --exclude=out -cf - .) | (cd "$OUT/peer-src" && tar -xf -)
  chmod -R u+w "$OUT/peer-src"
  for c in 32 1; do
    t=$(( c < 2 ? 1 : 2 )); skip=$(( c == 1 ? 1 : 0 ))
    (cd "$OUT/peer-src" && PEER_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/peer_bench" ENDPOINTS=validate \
      CONCURRENCY=$c WRK_THREADS=$t PORT=$PEER_PORT OUT="$OUT/peer" DURATION="$DURATION" WARMUP="$WARMUP" N="$N" \
      SKIP_SEED=$skip QUIET_MAX="$QUIET_MAX" QUIET_WAIT="$QUIET_WAIT" NOISY_RETRIES="$NOISY_RETRIES" ./bench.sh) >"$OUT/peer-c$c.log" 2>&1 || { tail -20 "$OUT/peer-c$c.log"; die "peer bench failed"; }
    PEER_ROWS+=("$(sed -e 's/^/c='"$c"' /' "$OUT/peer/results.raw" | tail -1)")
  done
fi

# (6) report -------------------------------------------------------------------------------------
field() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<" $2"; }
{
  echo
  echo "license validate benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(git -C "$ROOT" rev-parse --short HEAD) — binaries: $SERVER_BIN"
  echo "load average before/after the runs: ${LOAD_BEFORE:-?} / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "machine: nproc=$(nproc), $(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1); postgres: $PG_SETTINGS"
  echo "load: wrk -c1 -t1 / -c32 -t2, ${DURATION}s after ${WARMUP}s warm-up, random license of N=$N per request (peer's wrk/peer.lua)"
  printf '%-16s %9s %8s %8s %8s %6s | %5s %5s %5s | %s\n' server "req/s" "p50 ms" "p99 ms" "max ms" errors app pg host "load avg after"
  for r in "${RESULTS[@]}" ${PEER_ROWS[@]+"${PEER_ROWS[@]}"}; do
    name=$(field name "$r"); [[ "$r" == c=* ]] && name="peer-$(field workers "$r")w-${r%% *}"
    errs=$(( $(field bad "$r") + $(field connect_err "$r") + $(field read_err "$r") + $(field write_err "$r") + $(field timeouts "$r") ))
    printf '%-16s %9s %8s %8s %8s %6s | %5s %5s %5s | %s\n' "$name" "$(field rps "$r")" "$(field p50_ms "$r")" "$(field p99_ms "$r")" \
      "$(field max_ms "$r")" "$errs" "$(field app_cpu_pct "$r")" "$(field pg_cpu_pct "$r")" "$(field host_cpu_pct "$r")" "$(field load "$r")"
  done
  printf '%s\n' "${QUIET_LOG[@]}"
  echo "CPU columns: % of one core during the run (host max = 200). Peer rows: see $OUT/peer-c*.log for its own CPU and quiet checks."
} | tee -a "$OUT/results.txt"
