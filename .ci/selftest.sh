#!/usr/bin/env bash
# .ci/selftest.sh — proves that the step runner of .ci/run (.ci/lib.sh) lets every command
# of a step decide: each case runs a small runner in its own bash and checks its exit
# status and output. Run by .ci/run as its first step; prints one line a case and
# "selftest: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ok=0
bad=0

# CASE-NAME WANT(pass|fail) EXPECTED-OUTPUT-REGEX SCRIPT: SCRIPT runs after `source .ci/lib.sh`
# in a fresh `bash -euo pipefail` with IDENTIFY_PKCS11_CI_ALLOW_SKIP unset (unless the
# script sets it); it must exit 0 (pass) or not (fail) and print a line matching the regex.
case_() {
    local name=$1 want=$2 expect=$3 script=$4 out rc=0
    out=$(env -u IDENTIFY_PKCS11_CI_ALLOW_SKIP bash -euo pipefail -c "source .ci/lib.sh
$script" 2>&1) || rc=$?
    local got=pass
    [ "$rc" = 0 ] || got=fail
    if [ "$got" = "$want" ] && grep -qE "$expect" <<<"$out" && ! grep -q "WENT ON" <<<"$out"; then
        ok=$((ok + 1))
        echo "ok   $name"
    else
        bad=$((bad + 1))
        echo "FAIL $name (wanted $want, got $got with status $rc):"
        sed 's/^/    /' <<<"$out"
    fi
}

case_ "a step whose first command fails fails the runner" fail \
    '^=== first fails: FAILED with status 1' \
    'f() { false; echo "after false"; true; }
     step "first fails" f
     echo "WENT ON"'
case_ "the failing command is the last to run in its step" fail 'FAILED' \
    'f() { false; echo "WENT ON"; }
     step "stops at once" f'
case_ "a failing command in a pipeline fails its step" fail 'FAILED with status 3' \
    'f() { (exit 3) | cat; true; }
     step "pipeline" f
     echo "WENT ON"'
case_ "a failing command substitution fails its step" fail 'FAILED' \
    'f() { local x; x=$(false); true; }
     step "substitution" f
     echo "WENT ON"'
case_ "an unset variable fails its step" fail 'FAILED' \
    'f() { echo "$undefined_variable"; true; }
     step "unset" f
     echo "WENT ON"'
case_ "a failing nested function fails its step" fail 'FAILED' \
    'g() { false; true; }
     f() { g; true; }
     step "nested" f
     echo "WENT ON"'
case_ "a later step does not run after a failed one" fail '^ci: 1 passed, 1 failed$' \
    'step "passes" true
     step "fails" false
     step "never" echo WENT ON'
case_ "a skip is a failure" fail 'FAILED: it could not run here' \
    'f() { return $SKIP; }
     step "cannot run" f
     echo "WENT ON"'
case_ "a skip allowed by IDENTIFY_PKCS11_CI_ALLOW_SKIP=1 is named in the summary" pass \
    '^ci: 1 passed, 0 failed, 1 skipped$' \
    'export IDENTIFY_PKCS11_CI_ALLOW_SKIP=1
     f() { return $SKIP; }
     step "cannot run" f
     step "passes" true
     summary'
case_ "steps whose every command passes pass" pass '^ci: 2 passed, 0 failed$' \
    'f() { true; echo one; true; }
     step "one" f
     step "two" f
     summary'

echo "selftest: $ok passed, $bad failed"
[ "$bad" = 0 ]
