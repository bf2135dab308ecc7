#!/usr/bin/env bash
# tests/debian/package.sh — builds the Debian package from the release build, installs
# it with dpkg -i on this machine (root), checks the installed files: the tool, doctor
# and pkcs11-tool against /usr/lib/<multiarch>/pkcs11/libidentify_pkcs11.so with the
# packaged /etc/identify-pkcs11/config.toml, the manual pages and completions, that
# p11-kit consumers do not load the module; then dpkg -r (the configuration stays) and
# dpkg -P (it goes). Every command decides.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "the package test installs with dpkg: run it as root" >&2; exit 1; }
work=$(mktemp -d)
unset IDENTIFY_PKCS11_CONFIG
cleanup() { dpkg -P identify-pkcs11 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
dpkg -P identify-pkcs11 >/dev/null 2>&1 || true

deb=$(bash "$root/packaging/debian/build.sh" "$work")
echo "=== $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Installed-Size\|Depends\):/  \1:/p'
dpkg-deb --contents "$deb" | awk '{print "  " $1, $6}'
dpkg -i "$deb"

multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
module=/usr/lib/$multiarch/pkcs11/libidentify_pkcs11.so
test -f "$module"
test "$(stat -c '%a %U' /etc/identify-pkcs11/config.toml)" = "640 root"
grep -qx /etc/identify-pkcs11/config.toml /var/lib/dpkg/info/identify-pkcs11.conffiles
identify-pkcs11 --version
test -s /usr/share/man/man1/identify-pkcs11.1.gz
test -s /usr/share/man/man1/identify-pkcs11-doctor.1.gz
zcat /usr/share/man/man1/identify-pkcs11.1.gz | grep -q '^\.TH'
bash -n /usr/share/bash-completion/completions/identify-pkcs11
grep -q doctor /usr/share/zsh/vendor-completions/_identify-pkcs11

# doctor over the packaged configuration: every check OK (exit 0).
identify-pkcs11 doctor

pkcs11-tool --module "$module" --list-slots | tee "$work/slots.txt"
grep -q 'token label *: signing' "$work/slots.txt"

# p11-kit consumers do not load it by default.
if p11-kit list-modules 2>/dev/null | grep -q identify; then
    echo "p11-kit loads identify-pkcs11 by default" >&2
    exit 1
fi

dpkg -r identify-pkcs11
test ! -e /usr/bin/identify-pkcs11
test ! -e "$module"
test -f /etc/identify-pkcs11/config.toml # dpkg -r keeps the configuration
dpkg -P identify-pkcs11
test ! -e /etc/identify-pkcs11/config.toml
echo "debian package: installed, checked, removed and purged"
