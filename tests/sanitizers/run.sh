#!/usr/bin/env bash
# The C-ABI tests under the nightly compiler's sanitizers: tests/edge.rs (raw C ABI, 16
# threads, initialize/finalize races, the host-runtime case), tests/torture.rs for
# TORTURE_SECONDS per target (default 10: a directory slot, a key-vault slot on the
# emulator with faults, SoftHSM2 through the same harness) and, under AddressSanitizer,
# tests/pkcs11_suite.rs. The standard library is rebuilt instrumented (-Zbuild-std, which
# needs the nightly rust-src component), so that ThreadSanitizer sees its locks.
#
#   ASan + LeakSanitizer: any invalid access, use after free or leak fails the run.
#   TSan: any data race fails the run (exit 66), except the one named in tsan.supp.
#
# The module's cdylib, loaded with dlopen by the suite and the torture, is built
# instrumented too; asan-exports.list makes the test executables export ASan's runtime
# to it (exporting every symbol would let the test binary's own C_* functions interpose
# on SoftHSM2's). LeakSanitizer's lsan.supp names the one leak outside the module.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD/tests/sanitizers
target=x86_64-unknown-linux-gnu
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly
fi
# The emulator the key-vault tests start is a plain build (it is not under test here).
cargo build --locked -p kv-emulator
export KV_EMULATOR=$PWD/target/debug/kv-emulator
export TORTURE_SECONDS=${TORTURE_SECONDS:-10}

run() { # NAME RUSTFLAGS TEST...
    local name=$1 flags=$2
    shift 2
    local tests=()
    for t in "$@"; do tests+=(--test "$t"); done
    echo "--- $name: ${*}"
    local started=$SECONDS
    RUSTFLAGS="$flags" CARGO_TARGET_DIR=target/sanitizer-$name \
        cargo +nightly test -Zbuild-std --target $target --locked --no-fail-fast "${tests[@]}"
    echo "$name: no report ($((SECONDS - started)) s)"
}

sanitizers=${SANITIZERS:-address thread}
for s in $sanitizers; do
    case $s in
    address)
        ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$here/lsan.supp \
            run address "-Zsanitizer=address -Clink-arg=-Wl,--dynamic-list=$here/asan-exports.list" \
            edge torture pkcs11_suite
        ;;
    thread)
        TSAN_OPTIONS="suppressions=$here/tsan.supp report_signal_unsafe=0" \
            run thread "-Zsanitizer=thread" edge torture
        ;;
    *)
        echo "SANITIZERS: unknown $s (address, thread)"
        exit 2
        ;;
    esac
done
echo "sanitizers ($sanitizers): no report"
