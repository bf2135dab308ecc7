#!/usr/bin/env bash
# Measures kv-emulator's own throughput over loopback with kv-load: 32 concurrent
# clients, throttling off, at 0 ms and at 20 ms injected latency. Bounded: each run lasts
# SECONDS (default 6) seconds. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-$PWD/target}
seconds=${SECONDS_PER_RUN:-6}
cargo build --release --locked -p kv-emulator -p kv-contract --bin kv-load >&2
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
printf '[throttle]\nenabled = false\n' >"$work/bench.toml"
"$target/release/kv-emulator" --ready-file "$work/ready.json" --seed-dir softhsm-fixtures/keys \
    --config "$work/bench.toml" >"$work/emulator.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
for host in $(sed -n 's/.*"\([a-z0-9-]*\.\(vault\|managedhsm\)\.localhost\|login\.localhost\)".*/\1/p' "$work/ready.json"); do
    getent hosts "$host" >/dev/null || { echo "bench: $host does not resolve (add it to /etc/hosts)" >&2; exit 1; }
done
admin=$(sed -n 's/.*"admin_url": "\([^"]*\)".*/\1/p' "$work/ready.json")
load=$target/release/kv-load
for latency in 0 20; do
    curl -s -X PUT "$admin/faults" -d "{\"latency_ms\": $latency}" >/dev/null
    for run in "get_key rsa2048 vault" "sign p256 vault" "sign rsa2048 vault" "decrypt rsa2048 vault" "sign rsa2048 hsm"; do
        # shellcheck disable=SC2086 # op, key and kind as separate arguments
        echo "{\"latency_ms\": $latency, \"result\": $("$load" "$work/ready.json" 32 "$seconds" $run)}"
    done
done
