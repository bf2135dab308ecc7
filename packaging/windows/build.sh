#!/usr/bin/env bash
# packaging/windows/build.sh [OUT_DIR] — the Windows zip, cross-built on Linux: the module
# (identify_pkcs11.dll), the tool (identify-pkcs11.exe), an example configuration for the
# Windows certificate store, install.cmd and README.txt. Needs rustup's
# x86_64-pc-windows-gnu target and Debian's mingw-w64 (tests/windows/run.sh builds the
# same release artifacts for its tests, so there this build is a no-op). Prints the zip's
# path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/windows}
target=x86_64-pc-windows-gnu
dir=${CARGO_TARGET_DIR:-$root/target}/$target/release
(cd "$root" && cargo build --release --locked --target $target --lib --bins)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)
name=identify-pkcs11-$version-windows-x86_64
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$out"
install -m 0644 "$dir/identify_pkcs11.dll" "$dir/identify-pkcs11.exe" "$stage/$name/"
x86_64-w64-mingw32-strip --strip-unneeded "$stage/$name/identify_pkcs11.dll" "$stage/$name/identify-pkcs11.exe"
# Windows line endings for the files a Windows user opens or cmd.exe runs.
for f in config.example.toml install.cmd README.txt; do
    sed 's/\r*$/\r/' "$root/packaging/windows/$f" >"$stage/$name/$f"
done
sed 's/\r*$/\r/' "$root/LICENSE" >"$stage/$name/LICENSE.txt"
rm -f "$out/$name.zip"
(cd "$stage" && python3 -m zipfile -c "$out/$name.zip" "$name")
echo "$out/$name.zip"
