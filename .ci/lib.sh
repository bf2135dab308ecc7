# .ci/lib.sh — the step runner of .ci/run, sourced (also by .ci/selftest.sh).
#
# `step NAME FUNCTION [ARGS...]` runs FUNCTION in a subshell with errexit, nounset and
# pipefail switched on, and not on the left of `||`/`&&` or inside `if`: bash ignores
# errexit in a function called from such a place, and then only the function's last
# command decides its result. Here every command decides: the first one that fails ends
# the step, the step fails and the runner stops with "N passed, N failed".
#
# A step that returns $SKIP (77) could not run on this machine. That is a failure too,
# unless IDENTIFY_PKCS11_CI_ALLOW_SKIP=1 is set by a person for a machine that cannot run
# that step (README, "Tests"); the summary then names every skipped step.
SKIP=77
ci_start=$(date +%s)
passed=0
failed=0
skipped=()

step() { # NAME FUNCTION [ARGS...]
    local name=$1 t0 rc
    shift
    t0=$(date +%s)
    echo "=== $name"
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    local took=$(($(date +%s) - t0))
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "=== $name: ok ($took s)"
        return 0
    fi
    if [ "$rc" = "$SKIP" ] && [ "${IDENTIFY_PKCS11_CI_ALLOW_SKIP:-}" = 1 ]; then
        skipped+=("$name")
        echo "=== $name: SKIPPED, allowed by IDENTIFY_PKCS11_CI_ALLOW_SKIP=1 ($took s)"
        return 0
    fi
    failed=$((failed + 1))
    if [ "$rc" = "$SKIP" ]; then
        echo "=== $name: FAILED: it could not run here, and a skip is a failure" \
            "(IDENTIFY_PKCS11_CI_ALLOW_SKIP=1 allows it on a machine that cannot run it) ($took s)"
    else
        echo "=== $name: FAILED with status $rc ($took s)"
    fi
    echo "ci: $passed passed, $failed failed"
    exit 1
}

summary() { # the closing lines after the last step
    local took=$(($(date +%s) - ci_start))
    if [ ${#skipped[@]} -gt 0 ]; then
        echo "ci: SKIPPED, NOT RUN: ${skipped[*]}"
        echo "ci: the other steps passed in $took s"
        echo "ci: $passed passed, $failed failed, ${#skipped[@]} skipped"
    else
        echo "ci: all steps passed in $took s"
        echo "ci: $passed passed, $failed failed"
    fi
}
