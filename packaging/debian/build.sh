#!/usr/bin/env bash
# packaging/debian/build.sh [OUT_DIR] — the Debian package from the release build
# (`cargo build --release` first): the module in /usr/lib/<multiarch>/pkcs11/, the tool
# in /usr/bin, manual pages and shell completions generated from the tool's own clap
# definitions, an example /etc/identify-pkcs11/config.toml (a conffile, 0640), an empty
# store directory, and a p11-kit module file that enables the module in no program.
# Prints the package's path. Needs dpkg-deb (Debian's dpkg).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/debian}
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/identify-pkcs11
lib=$target/release/libidentify_pkcs11.so
for f in "$bin" "$lib"; do
    [ -f "$f" ] || { echo "$f not found: run cargo build --release first" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)
arch=$(dpkg --print-architecture)
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 0644 "$lib" "$stage/usr/lib/$multiarch/pkcs11/libidentify_pkcs11.so"
install -D -m 0755 "$bin" "$stage/usr/bin/identify-pkcs11"
strip --strip-unneeded "$stage/usr/lib/$multiarch/pkcs11/libidentify_pkcs11.so" "$stage/usr/bin/identify-pkcs11"
"$bin" man "$stage/usr/share/man/man1"
gzip -9n "$stage"/usr/share/man/man1/*.1
install -d "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$stage/usr/share/bash-completion/completions/identify-pkcs11"
"$bin" completions zsh >"$stage/usr/share/zsh/vendor-completions/_identify-pkcs11"
"$bin" completions fish >"$stage/usr/share/fish/vendor_completions.d/identify-pkcs11.fish"
install -D -m 0640 "$root/packaging/config.example.toml" "$stage/etc/identify-pkcs11/config.toml"
install -d -m 0750 "$stage/var/lib/identify-pkcs11/store"
sed "s|/usr/lib/x86_64-linux-gnu/|/usr/lib/$multiarch/|" "$root/packaging/debian/identify-pkcs11.module" |
    install -D -m 0644 /dev/stdin "$stage/usr/share/p11-kit/modules/identify-pkcs11.module"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/identify-pkcs11/README.md"
install -D -m 0644 "$root/LICENSE" "$stage/usr/share/doc/identify-pkcs11/copyright"
gzip -9n "$stage/usr/share/doc/identify-pkcs11/README.md"

install -d "$stage/DEBIAN"
echo /etc/identify-pkcs11/config.toml >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "$root/packaging/debian/control.in" >"$stage/DEBIAN/control"
mkdir -p "$out"
deb=$out/identify-pkcs11_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
