#!/usr/bin/env bash
# The fuzz targets of fuzz/ (cargo-fuzz, libFuzzer, the nightly toolchain), each run for
# FUZZ_SECONDS (default 30) from its committed seeds (fuzz/corpus/<target>/seed-*) into a
# scratch corpus, so a run never changes the repository. Any crash, panic, leak (leak
# detection is on for every target) or timeout
# fails the run; libFuzzer leaves the input in fuzz/artifacts/<target>/ and prints the
# `cargo fuzz run` line that reproduces it. FUZZ_TARGETS limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-c_abi azure_decode certs_config mechanism_params}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

cargo +nightly fuzz build -O
summary=()
for target in $targets; do
    scratch=$(mktemp -d)
    log=$scratch.log
    echo "--- fuzz $target for ${seconds}s"
    status=0
    # -timeout: one input taking longer than this is a hang, a failure like a crash.
    cargo +nightly fuzz run -O "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rm -rf "$scratch"
    if [ "$status" != 0 ]; then
        tail -n 60 "$log"
        echo "fuzz $target: FAILED (status $status); the input is in fuzz/artifacts/$target/"
        exit 1
    fi
    rm -f "$log"
    summary+=("$target: ${runs:-?} executions, ${speed:-?}/s, 0 crashes")
done
printf 'fuzz: %s\n' "${summary[@]}"
