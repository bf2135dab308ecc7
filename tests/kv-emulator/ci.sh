#!/usr/bin/env bash
# Unit and contract tests of kv-emulator, for .ci/run (as root, on a fresh Debian 12 machine, after
# the Rust build) and for developers. It builds the emulator and the Rust contract tests,
# creates the Python venv with the official Azure SDKs (cached under target/), makes the
# emulator's host names resolve, starts the emulator with the fixture keys, runs the
# Python and Rust contract tests against it, stops it, and ends with "N passed, N failed"
# (exit status non-zero on any failure).
#
# Environment: CARGO_TARGET_DIR (default target/), KV_PROFILE (release|dev, default
# release), PYTHON (default /usr/bin/python3 if present), KV_SHARED_AZURE (recordings and
# OpenAPI files; default tests/kv-contract/azure in this repository).
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
profile=${KV_PROFILE:-release}
python=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
work=$target/kv-contract-run
venv=$target/kv-venv
mkdir -p "$work"

passed=0
failed=0
emulator_pid=

finish() {
    if [ -n "$emulator_pid" ] && kill -0 "$emulator_pid" 2>/dev/null; then
        kill -TERM "$emulator_pid" 2>/dev/null
        wait "$emulator_pid" 2>/dev/null
    fi
}
trap finish EXIT

die() {
    echo "kv-emulator ci: $*" >&2
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}

if [ "$profile" = release ]; then
    cargo_profile=(--release)
    bin_dir=$target/release
else
    cargo_profile=()
    bin_dir=$target/debug
fi

echo "=== kv-emulator: build (emulator and Rust contract tests, $profile)"
cargo build "${cargo_profile[@]}" --locked -p kv-emulator || die "cargo build -p kv-emulator failed"
cargo test "${cargo_profile[@]}" --locked -p kv-contract --no-run || die "building the Rust contract tests failed"

echo "=== kv-emulator: unit tests"
cargo test "${cargo_profile[@]}" --locked -p kv-emulator 2>&1 | tee "$work/unit.log"
unit_status=${PIPESTATUS[0]}
unit_passed=$(grep -E '^test result:' "$work/unit.log" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
unit_failed=$(grep -E '^test result:' "$work/unit.log" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
if [ "$unit_status" != 0 ] && [ "$unit_failed" = 0 ]; then
    unit_failed=1
fi
passed=$((passed + unit_passed))
failed=$((failed + unit_failed))

echo "=== kv-emulator: Python venv ($venv)"
req=tests/kv-contract/python/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "python3 -m venv failed (Debian package python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" || die "pip install failed"
    echo "$want" >"$stamp"
fi

echo "=== kv-emulator: start"
ready=$work/ready.json
rm -f "$ready"
"$bin_dir/kv-emulator" --ready-file "$ready" --seed-dir softhsm-fixtures/keys \
    --config tests/kv-contract/emulator.toml --vault testvault --hsm testhsm \
    >"$work/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 1 300); do
    [ -s "$ready" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$ready" ]; then
    cat "$work/emulator.log" >&2
    die "the emulator wrote no ready file"
fi

# The emulator's host names must resolve to 127.0.0.1.
for host in $("$venv/bin/python" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["hosts"]))' "$ready"); do
    if ! getent hosts "$host" >/dev/null; then
        if [ -w /etc/hosts ]; then
            echo "127.0.0.1 $host" >>/etc/hosts
        else
            die "$host does not resolve and /etc/hosts is not writable: add '127.0.0.1 $host'"
        fi
    fi
done

field() { "$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"; }
export KV_EMULATOR_READY=$ready KV_EMULATOR_BIN=$bin_dir/kv-emulator PYTHONDONTWRITEBYTECODE=1
IDENTITY_ENDPOINT=$(field identity_endpoint) || die "the ready file has no identity_endpoint"
IDENTITY_HEADER=$(field identity_header) || die "the ready file has no identity_header"
export IDENTITY_ENDPOINT IDENTITY_HEADER

echo "=== kv-emulator: Python contract tests (azure-keyvault-keys, -certificates, azure-identity)"
(cd tests/kv-contract/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider .) 2>&1 | tee "$work/pytest.log"
py_status=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)' "$work/pytest.log" | tail -1)
py_passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | awk '{s += $1} END {print s + 0}')
py_failed=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s += $1} END {print s + 0}')
if [ "$py_status" != 0 ] && [ "$py_failed" = 0 ]; then
    py_failed=1 # pytest itself failed (collection error, no tests)
fi
passed=$((passed + py_passed))
failed=$((failed + py_failed))

echo "=== kv-emulator: Rust contract tests (azure_security_keyvault_keys, _certificates, azure_identity)"
cargo test "${cargo_profile[@]}" --locked -p kv-contract -- --test-threads=4 2>&1 | tee "$work/cargo-test.log"
rs_status=${PIPESTATUS[0]}
rs_passed=$(grep -E '^test result:' "$work/cargo-test.log" | grep -oE '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
rs_failed=$(grep -E '^test result:' "$work/cargo-test.log" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
if [ "$rs_status" != 0 ] && [ "$rs_failed" = 0 ]; then
    rs_failed=1
fi
passed=$((passed + $rs_passed))
failed=$((failed + $rs_failed))

if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "kv-emulator ci: the emulator died during the tests" >&2
    tail -50 "$work/emulator.log" >&2
    failed=$((failed + 1))
fi
finish
emulator_pid=

echo "kv-emulator: unit $unit_passed passed, $unit_failed failed; python contract $py_passed passed, $py_failed failed; rust contract $rs_passed passed, $rs_failed failed"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
