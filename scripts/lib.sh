# Shared by scripts/dev and scripts/test: find or start what keyledger needs on a fresh
# Debian machine with Rust (no AWS account, no Docker). Sourced, not run.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KEYLEDGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyledger}
mkdir -p "$CACHE"
# Builds of the AWS SDK take minutes: keep one target directory outside the clone so
# every clone (and CI) reuses it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
VENV=$CACHE/venv
CLEANUP=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

on_exit() {
  local status=$?
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[$i]}" || true; done
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  say "installing $* (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  }
}

# Installs PyPI packages (specs) into virtualenv $1 unless they are there already.
venv_install() {
  local venv=$1
  shift
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if [ ! -x "$venv/bin/pip" ]; then
    say "creating $venv"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  fi
  local missing=()
  for spec in "$@"; do
    # A pinned spec (`schemathesis==4.32.5`) wants that version, not just the package.
    local name=${spec%%[\[=<>]*} want='' have
    [[ $spec == *==* ]] && want=${spec##*==}
    # `pip show` exits 1 for a package that is not installed: under pipefail that must not end the script.
    have=$({ "$venv/bin/pip" show "$name" 2>/dev/null || true; } | sed -n 's/^Version: //p')
    if [ -z "$have" ] || { [ -n "$want" ] && [ "$have" != "$want" ]; }; then missing+=("$spec"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (PyPI)"
    "$venv/bin/pip" install -q --disable-pip-version-check "${missing[@]}"
  fi
}

# Python tools from PyPI in a private virtualenv: moto[server], cargo-lambda, ...
python_tools() {
  venv_install "$VENV" "$@"
  export PATH="$VENV/bin:$PATH"
}

# The deploy tool chain from PyPI: AWS SAM CLI, cfn-lint, cargo-lambda and zig (the arm64
# cross linker). Its own virtualenv, because aws-sam-cli pins boto3/botocore versions that
# must not fight moto's. KEYLEDGER_DEPLOY_BIN names its bin directory (the tests use it).
DEPLOY_VENV=$CACHE/venv-deploy
deploy_tools() {
  venv_install "$DEPLOY_VENV" aws-sam-cli cfn-lint cargo-lambda ziglang
  export KEYLEDGER_DEPLOY_BIN=$DEPLOY_VENV/bin SAM_CLI_TELEMETRY=0
  # sam finds cargo-lambda on PATH, and cargo-lambda runs zig as `python3 -m ziglang`, so
  # this virtualenv's python3 must come first (moto's server is started by its full path).
  export PATH="$DEPLOY_VENV/bin:$PATH"
  # cargo-lambda cross-compiles for Graviton; the standard library comes from rustup.
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return; }; done
  return 1
}

# Sets PG_SERVER_URL to a server where databases can be created: $DATABASE_URL's server,
# else 127.0.0.1:5432, else a throwaway cluster started from the system's binaries
# (KEYLEDGER_THROWAWAY_PG=1 forces the throwaway cluster).
ensure_postgres() {
  command -v psql >/dev/null || apt_install postgresql-client
  if [ -n "${DATABASE_URL:-}" ] && psql "$DATABASE_URL" -qAtc 'select 1' >/dev/null 2>&1; then
    PG_SERVER_URL=$DATABASE_URL
    say "PostgreSQL: using DATABASE_URL"
    return
  fi
  if [ -z "${KEYLEDGER_THROWAWAY_PG:-}" ] && port_open 127.0.0.1 5432 && psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    PG_SERVER_URL="postgres://postgres@127.0.0.1:5432/postgres"
    say "PostgreSQL: using 127.0.0.1:5432"
    return
  fi
  local bin dir=${KEYLEDGER_PG_DIR:-$CACHE/pg} port=${KEYLEDGER_PG_PORT:-55432}
  # The server runs as 'postgres' when we are root, and root's home is closed to it.
  [ "$(id -u)" = 0 ] && dir=${KEYLEDGER_PG_DIR:-/var/tmp/keyledger-pg}
  bin=$(pg_bin) || { apt_install postgresql; bin=$(pg_bin); }
  PG_SERVER_URL="postgres://postgres@127.0.0.1:$port/postgres"
  if port_open 127.0.0.1 "$port"; then
    say "PostgreSQL: reusing the throwaway cluster on port $port"
    PG_CA_FILE=$dir/data/ca.crt
    return
  fi
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir "$dir" postgres
    run=(runuser -u postgres --)
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "PostgreSQL: creating a throwaway cluster in $dir"
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    # TLS with a certificate for 'localhost' from a private CA, so that DB_SSLMODE
    # (require, verify-full) can be tested against a real server.
    command -v openssl >/dev/null || apt_install openssl
    (
      cd "$dir/data"
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=keyledger-test-ca \
        -keyout ca.key -out ca.crt 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile server.ext -out server.crt 2>/dev/null
      chmod 600 server.key ca.key
    )
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir/data"
  fi
  say "PostgreSQL: starting the throwaway cluster on port $port"
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c ssl=on" start >/dev/null
  PG_CA_FILE=$dir/data/ca.crt
  CLEANUP+=("${run[*]} $bin/pg_ctl -D $dir/data -m fast stop >/dev/null 2>&1")
}

# Starts moto's server mode (Secrets Manager, EventBridge, ...) on a free loopback port and
# points the AWS SDK at it with fake credentials.
start_moto() {
  python_tools 'moto[server]'
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$CACHE/moto.log" 2>&1 &
  local pid=$!
  CLEANUP+=("kill $pid 2>/dev/null")
  for _ in $(seq 1 100); do port_open 127.0.0.1 "$port" && break; sleep 0.1; done
  port_open 127.0.0.1 "$port" || { cat "$CACHE/moto.log" >&2; echo "moto did not start" >&2; return 1; }
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_REGION:-us-east-1}
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  unset AWS_PROFILE AWS_SESSION_TOKEN
  say "moto server on $AWS_ENDPOINT_URL"
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; return 1; }
  command -v cc >/dev/null || apt_install build-essential
}

# Under cargo lambda watch the functions believe they run on Lambda, where DB_SSLMODE defaults
# to verify-full against the Amazon RDS CAs: a local database gets its own mode (require when
# it speaks TLS, else disable), unless DB_SSLMODE is set. Needs DATABASE_URL.
local_lambda_sslmode() {
  if [ -z "${DB_SSLMODE:-}" ]; then
    DB_SSLMODE=disable
    [ "$(psql "$DATABASE_URL" -qAtc 'show ssl' 2>/dev/null)" = on ] && DB_SSLMODE=require
    export DB_SSLMODE
  fi
}
