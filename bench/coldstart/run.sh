#!/usr/bin/env bash
# Cold start of every function crate (release build for this machine) and of a bare
# lambda_http + axum hello, against the Runtime API stub in src/main.rs, with the secrets in
# moto and the database in the local PostgreSQL (docs/benchmarks.md, "Cold start").
#   bench/coldstart/run.sh [RUNS]     (default 20 runs per binary)
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
RUNS=${1:-20}
ensure_rust
ensure_postgres
start_moto

# The stub and the hello build in their own target directory: they share no crate with the
# workspace's release build and must not wait for its lock.
BENCH_TARGET=$CACHE/target-bench
if [ -z "${KEYLEDGER_BENCH_NO_BUILD:-}" ]; then
  say "release builds (this machine's architecture)"
  packages=()
  for dir in functions/*/; do packages+=(-p "$(basename "$dir")"); done
  cargo build --release --locked "${packages[@]}" 2>&1 | tail -1
  CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --manifest-path bench/coldstart/Cargo.toml 2>&1 | tail -1
fi
BIN=$CARGO_TARGET_DIR/release
STUB=$BENCH_TARGET/release/coldstart
HELLO=$BENCH_TARGET/release/hello

DB=kl_bench_coldstart
psql "$PG_SERVER_URL" -qc "drop database if exists $DB with (force)" -qc "create database $DB" >/dev/null
PGHOST=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname, p.port or 5432)' "$PG_SERVER_URL")
read -r HOST PORT <<<"$PGHOST"
WORK=$CACHE/bench-coldstart   # per-run JSON lines stay here for inspection
mkdir -p "$WORK"

# Secrets the way the template makes them: key ring, admin key, pepper, license signing ring
# (`keyledger keys generate-signing`: an Ed25519 seed per key id), the owner's secret and one
# role secret per function (username + password only; DB_HOST/DB_PORT/DB_NAME say where).
eval "$("$VENV/bin/python" - "$HOST" "$PORT" "$DB" <<'PY'
import base64, boto3, json, os, secrets, sys
host, port, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sm = boto3.client("secretsmanager")
run = secrets.token_hex(4)
def put(name, value):
    return sm.create_secret(Name=f"bench/{run}/{name}", SecretString=value)["ARN"]
ring = put("keys", json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}))
admin_key = "kl_bench_" + secrets.token_hex(16)
admin = put("admin-key", admin_key)
pepper = put("pepper", secrets.token_hex(32))
signing = put("signing", json.dumps({"current": "s1", "keys": {"s1": base64.b64encode(os.urandom(32)).decode()}}))
owner = put("owner", json.dumps({"username": "postgres", "password": "unused", "host": host, "port": port, "dbname": db}))
roles = {}
for f in ["oauth", "token-fetch", "token-refresh", "license-validate", "request-log", "admin", "events-relay"]:
    roles[f] = put(f"db-{f}", json.dumps({"username": f"kl_bench_{f.replace('-', '_')}", "password": secrets.token_hex(20)}))
print(f"RING={ring} ADMIN_ID={admin} ADMIN_KEY={admin_key} PEPPER={pepper} SIGNING={signing} OWNER={owner}")
print("ROLE_IDS='" + json.dumps(roles) + "'")
for f, arn in roles.items():
    print(f"ROLE_{f.replace('-', '_').upper()}={arn}")
PY
)"

# TLS as on Lambda (verify-full), against the local server's own CA by its certificate's
# name (localhost); KEYLEDGER_BENCH_SSLMODE=disable measures without it.
CA=${PG_CA_FILE:-$(psql "$PG_SERVER_URL" -qAtc 'show ssl_cert_file')}
# A relative ssl_cert_file is relative to the data directory (as in scripts/test).
case $CA in /*) ;; *) CA="$(psql "$PG_SERVER_URL" -qAtc 'show data_directory')/$CA" ;; esac
SSLMODE=${KEYLEDGER_BENCH_SSLMODE:-verify-full}
[ "$SSLMODE" != disable ] && HOST=localhost
common=(AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_REGION="$AWS_REGION" AWS_ACCESS_KEY_ID=testing
  AWS_SECRET_ACCESS_KEY=testing LOG_FORMAT=json DB_SSLMODE="$SSLMODE" DB_CA_BUNDLE="$CA" DB_HOST="$HOST" DB_PORT="$PORT" DB_NAME="$DB")

"$VENV/bin/python" - "$ADMIN_KEY" "$WORK" <<'PY'
import json, sys
key, work = sys.argv[1], sys.argv[2]
base = json.load(open("tests/fixtures/apigw-v2-health.json"))
def event(path, auth=None):
    e = json.loads(json.dumps(base))
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["routeKey"] = e["requestContext"]["routeKey"] = "GET " + path
    if auth:
        e["headers"]["authorization"] = "Bearer " + auth
    return e
json.dump(event("/"), open(f"{work}/hello.json", "w"))
json.dump(event("/v1/api-keys", key), open(f"{work}/admin.json", "w"))
# A connection nobody created: authenticates, looks it up (one round trip), answers 404.
json.dump(event("/v1/tokens/bench-unknown-connection", key), open(f"{work}/token-fetch.json", "w"))
json.dump({"action": "up"}, open(f"{work}/up.json", "w"))
json.dump({"action": "status"}, open(f"{work}/status.json", "w"))
PY

say "migrate up (migrations, key ring, roles) once"
"$STUB" "$BIN/migrate" "$WORK/up.json" 1 "${common[@]}" DB_SECRET_ID="$OWNER" \
  ENCRYPTION_KEYS_SECRET_ID="$RING" ROLE_SECRET_IDS="$ROLE_IDS" | tail -1

measure() {
  local name=$1
  shift
  say "$name: $RUNS cold starts"
  "$STUB" "$@" >"$WORK/$name.jsonl"
  tail -1 "$WORK/$name.jsonl"
  # What the function answered, per run: the HTTP status, or the start of the JSON answer.
  python3 -c 'import collections, json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if "\"run\"" in l]
print("answers:", dict(collections.Counter(str(r["answer"])[:60] for r in runs)))' "$WORK/$name.jsonl"
}
measure hello "$HELLO" "$WORK/hello.json" "$RUNS" "${common[@]}"
measure admin "$BIN/admin" "$WORK/admin.json" "$RUNS" "${common[@]}" DB_SECRET_ID="$ROLE_ADMIN" \
  ENCRYPTION_KEYS_SECRET_ID="$RING" ADMIN_API_KEY_SECRET_ID="$ADMIN_ID" LICENSE_KEY_PEPPER_SECRET_ID="$PEPPER"
measure migrate "$BIN/migrate" "$WORK/status.json" "$RUNS" "${common[@]}" DB_SECRET_ID="$OWNER" \
  ENCRYPTION_KEYS_SECRET_ID="$RING"
# A key no license has: the lookup by the peppered hash finds nothing, and the answer is a
# signed NOT_FOUND with status 200 (tests/it/http_plumbing.rs feeds the same fixture through
# lambda_http). Pepper, signing ring and the function's own role, as the template sets them.
measure license-validate "$BIN/license-validate" tests/fixtures/apigw-v2-license-validate.json "$RUNS" "${common[@]}" \
  DB_SECRET_ID="$ROLE_LICENSE_VALIDATE" LICENSE_KEY_PEPPER_SECRET_ID="$PEPPER" LICENSE_SIGNING_KEYS_SECRET_ID="$SIGNING"
measure token-fetch "$BIN/token-fetch" "$WORK/token-fetch.json" "$RUNS" "${common[@]}" DB_SECRET_ID="$ROLE_TOKEN_FETCH" \
  ENCRYPTION_KEYS_SECRET_ID="$RING" ADMIN_API_KEY_SECRET_ID="$ADMIN_ID"
ls -l "$HELLO" "$BIN/admin" "$BIN/migrate" "$BIN/license-validate" "$BIN/token-fetch" | awk '{print $5, $9}'
