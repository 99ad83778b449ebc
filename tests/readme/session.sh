# The helpers of the bash session in which scripts/readme-examples runs README.md's
# commands (the commands come from tests/readme/extract.py). Sourced first; $__TMP is a
# scratch directory the runner made.
set -euo pipefail
shopt -s inherit_errexit

__OUT=$__TMP/out        # stdout of the current command
__STATUS=$__TMP/status  # "status method url" of each curl call of the current command
__BODY=$__TMP/body      # stdout of the last curl call
__LOG=$__TMP/calls      # every curl call of the run
__WHERE=""
touch "$__LOG"

__block() { printf '\n\033[1m--- README.md:%s  (%s)\033[0m\n' "$1" "$2"; }

__TALLY=$__TMP/tally    # a line per command run, skipped and claim checked
__skip() {
  printf '\033[33mSKIP\033[0m README.md:%s  %s\n     reason: %s\n' "$1" "$2" "$3"
  echo skip >>"$__TALLY"
}

__cmd() {
  __WHERE="README.md:$1"
  echo run >>"$__TALLY"
  printf '\033[36m$\033[0m %s\n' "$2"
  : >"$__STATUS"
  : >"$__BODY"
}

__fail() {
  printf '\033[31mFAIL\033[0m %s: %s\n' "$__WHERE" "$*" >&2
  __FAILED=1
  exit 1
}

# Any other way out with an error (set -e on a failing command) says where, too.
__FAILED=0
__on_exit() {
  local status=$?
  if [ "$status" != 0 ] && [ "$__FAILED" = 0 ] && [ "$BASH_SUBSHELL" = 0 ]; then
    [ ! -s "$__OUT" ] || sed 's/^/     /' "$__OUT" >&2
    printf '\033[31mFAIL\033[0m %s: the command exited with status %s\n' "$__WHERE" "$status" >&2
  fi
}
trap __on_exit EXIT

# Every curl call's status goes to $__STATUS; a connection failure or a 5xx fails the run
# at once (also inside $(...), where only the subshell would stop: __check looks again).
curl() {
  local hdr=$__TMP/headers method=GET url="" rc=0 status prev=""
  for arg in "$@"; do
    case $prev in -X | --request) method=$arg ;; esac
    case $arg in http://* | https://*) url=$arg ;; esac
    prev=$arg
  done
  : >"$hdr"
  command curl -D "$hdr" "$@" >"$__BODY" || rc=$?
  status=$(grep -ao '^HTTP/[0-9.]* [0-9]\{3\}' "$hdr" | tail -n 1 | awk '{print $2}' || true)
  status=${status:-000}
  printf '%s %s %s\n' "$status" "$method" "$url" | tee -a "$__LOG" >>"$__STATUS"
  cat "$__BODY"
  [ "$rc" = 0 ] || __fail "curl exited $rc ($method $url): no answer"
  [ "${status:0:1}" != 5 ] || __fail "$method $url answered $status"
}

# __check LINE STATUS JQ...: STATUS ("-" for none) is the expected status of the command's
# last curl call; every other call must be below 400. Each JQ expression must hold for the
# command's output when it is JSON, else for the last curl call's body.
__check() {
  local line=$1 want=$2 n=0 i=0 status method url target
  shift 2
  n=$(wc -l <"$__STATUS")
  while read -r status method url; do
    i=$((i + 1))
    if [ "$i" = "$n" ] && [ "$want" != - ]; then
      [ "$status" = "$want" ] || __fail "$method $url answered $status, the README says $want"
      echo claim >>"$__TALLY"
    elif [ "$status" = 000 ] || [ "$status" -ge 400 ]; then
      __fail "$method $url answered $status (no '# -> $status' in the README says so)"
    fi
    printf '     \033[32m%s\033[0m %s %s\n' "$status" "$method" "$url"
  done <"$__STATUS"
  [ "$want" = - ] || [ "$n" -gt 0 ] || __fail "the README gives a status ($want) but no curl ran"
  if [ -s "$__OUT" ]; then
    head -c 600 "$__OUT" | sed 's/^/     /'
    if [ "$(wc -c <"$__OUT")" -gt 600 ]; then echo " …"; elif [ -n "$(tail -c 1 "$__OUT")" ]; then echo; fi
  fi
  if [ $# -gt 0 ] && [[ $1 == text:* ]]; then
    [ "$(cat "$__OUT")" = "${1#text:}" ] || __fail "the output is not ${1#text:}"
    printf '     \033[32mok\033[0m output is %s\n' "${1#text:}"
    echo claim >>"$__TALLY"
    shift
  fi
  [ $# -gt 0 ] || return 0
  if jq -e . "$__OUT" >/dev/null 2>&1; then target=$__OUT; else target=$__BODY; fi
  for expr in "$@"; do
    jq -e "$expr" "$target" >/dev/null 2>&1 || __fail "the answer does not satisfy: $expr"
    printf '     \033[32mok\033[0m %s\n' "$expr"
    echo claim >>"$__TALLY"
  done
}
