#!/usr/bin/env bash
# Request log stats benchmark (issue 18): GET /v1/requests/stats p50/p99 over 1,000,000 records
# for a 24-hour and a 30-day range.
# Builds the bench in release mode, waits until the machine is quiet (other work on a small
# machine distorts the numbers), then runs bench/request_log_stats.rs against local PostgreSQL.
# Knobs: BENCH_DATABASE_URL, BENCH_POOL (4), BENCH_QUERIES (500 per 24-h case), BENCH_QUERIES_30D (100),
# QUIET_MAX (host busy % that counts as quiet, 15), QUIET_SECS (6), QUIET_WAIT (600 s),
# BENCH_BIN (an already built bench binary: skips cargo, whose build lock other builds on a
# shared target directory can hold for many minutes).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

ensure_rust
ensure_postgres
export BENCH_DATABASE_URL=${BENCH_DATABASE_URL:-$PG_SERVER_URL}

if [ -z "${BENCH_BIN:-}" ]; then
  say "building the benchmark (release)"
  BENCH_BIN=$(cargo bench --locked --bench request_log_stats --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "request_log_stats" and m.get("executable"):
        print(m["executable"])')
fi

host_busy_pct() { # busy % of the whole host over $1 seconds
  local a0 i0 a1 i1
  read -r a0 i0 < <(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  sleep "$1"
  read -r a1 i1 < <(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  echo $(( ( (a1-a0) - (i1-i0) ) * 100 / ( (a1-a0) > 0 ? (a1-a0) : 1 ) ))
}
QUIET_MAX=${QUIET_MAX:-15} QUIET_SECS=${QUIET_SECS:-6} QUIET_WAIT=${QUIET_WAIT:-600}
waited=0
while :; do
  busy=$(host_busy_pct "$QUIET_SECS")
  if (( busy <= QUIET_MAX )); then say "machine quiet: ${busy}% busy over ${QUIET_SECS}s (after waiting ${waited}s)"; break; fi
  if (( waited >= QUIET_WAIT )); then say "machine still ${busy}% busy after ${waited}s; measuring anyway"; break; fi
  (( waited == 0 )) && say "machine ${busy}% busy; waiting up to ${QUIET_WAIT}s for it to go quiet"
  waited=$((waited + QUIET_SECS))
done
say "load average: $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL: $(psql "$BENCH_DATABASE_URL" -Atc 'select version()' | cut -d' ' -f1-2), fsync=$(psql "$BENCH_DATABASE_URL" -Atc 'show fsync'), synchronous_commit=$(psql "$BENCH_DATABASE_URL" -Atc 'show synchronous_commit')"
"$BENCH_BIN" --bench
