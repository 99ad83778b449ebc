#!/usr/bin/env bash
# The runner's self-test (scripts/readme-examples runs it first): tiny READMEs that must pass
# or fail, against the fake provider at $1. Proves that a wrong status, an unannounced 4xx, a
# 5xx, a connection failure, a JSON member that differs and a status claimed without a curl
# each fail the run. usage: selftest.sh PROVIDER_URL SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
P=$1 dir=$2
mkdir -p "$dir"
n=0 bad=0

case_() { # case_ pass|fail NAME BLOCK
  local want=$1 name=$2 block=$3 md=$dir/case.md got
  printf '# case\n\n```sh\n%s\n```\n' "$block" >"$md"
  {
    echo "source '$here/session.sh'"
    README_SKIP_RULES= python3 "$here/extract.py" "$md" server
  } >"$dir/case.sh" || { echo "selftest: extract failed on: $name" >&2; bad=$((bad + 1)); return; }
  : >"$dir/calls"
  if P=$P __TMP=$dir bash "$dir/case.sh" >"$dir/case.log" 2>&1; then got=pass; else got=fail; fi
  n=$((n + 1))
  if [ "$got" = "$want" ]; then
    printf 'selftest: ok, %s: %s\n' "$name" "$(grep -ao 'FAIL.*' "$dir/case.log" | head -n 1 | sed 's/\x1b\[[0-9;]*m//g' || true)"
  else
    bad=$((bad + 1))
    echo "selftest: '$name' should $want but did $got:" >&2
    sed 's/^/    /' "$dir/case.log" >&2
  fi
}

case_ pass "an announced status and matching members" \
  "curl -s -X POST \$P/oauth/v2/token/revoke   # -> 200
curl -s \$P/status/201
# -> 201 {\"status\": 201}"
case_ pass "a 4xx the README announces" "curl -s \$P/status/409   # -> 409"
case_ fail "a 4xx the README does not announce" "curl -s \$P/nope"
case_ fail "a 4xx inside \$(...)" "X=\$(curl -s \$P/nope)"
case_ fail "another status than the README says" "curl -s \$P/status/404   # -> 200"
case_ fail "a 5xx, even announced" "curl -s \$P/status/503   # -> 503"
case_ fail "a 5xx inside \$(...) | jq" "X=\$(curl -s \$P/status/500 | jq -r .status)"
case_ fail "no answer" "curl -s http://127.0.0.1:1/"
case_ fail "a member with another value" "curl -s \$P/status/200
# -> 200 {\"status\": 201}"
case_ fail "a member the README says is absent" "curl -s \$P/status/200   # -> 200 {... no status ...}"
case_ fail "a status claimed without a curl" "true   # -> 200"
case_ fail "a failing command" "false"

echo "selftest: $((n - bad)) of $n cases as expected"
[ "$bad" = 0 ]
