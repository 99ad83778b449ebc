#!/usr/bin/env bash
# CPU cost of signing one license answer (issue 16: "signing adds at most 0.05 ms of CPU per
# answer"): keyledger's own shared/src/signing/mod.rs, compiled in by path with the workspace's
# release profile, signs src/answer.json (a VALID answer as license-validate sends it).
#   bench/sign-cost/run.sh [ITERATIONS]     (default 20000)
# Prints, three times, the wall and the thread's CPU time per signature (CPU time from
# /proc/thread-self/schedstat: it does not grow while other work holds the core), then the
# instructions per signature under valgrind's callgrind (difference of a 1,100- and a
# 100-signature run over 1,000), which do not depend on the host's load at all.
# Knobs: CARGO_TARGET_DIR (default: the workspace's target dir + /sign-cost).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ITER=${1:-20000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${KEYLEDGER_CACHE:-$HOME/.cache/keyledger}/target/sign-cost}
(cd "$HERE" && cargo build --release --locked -q)
BIN=$CARGO_TARGET_DIR/release/sign-cost
echo "load: $(uptime)"
for run in 1 2 3; do "$BIN" "$ITER"; done
echo "load: $(uptime)"
if command -v valgrind >/dev/null; then
  ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" 2>&1 | sed -nE 's/.*Collected : ([0-9]+).*/\1/p'; }
  a=$(ir 100) b=$(ir 1100)
  echo "callgrind: $a instructions for 100 signatures, $b for 1100: $(( (b - a) / 1000 )) instructions per signature"
fi
