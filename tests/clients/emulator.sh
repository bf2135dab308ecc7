# tests/clients/emulator.sh — sourced by key-vault.sh and managed-hsm.sh: starts
# kv-emulator ($EMULATOR, seeded with the fixture keys) with its ready file in $WORK,
# stops it on exit, makes its host names resolve, and defines `field NAME` (a field of the
# ready file). Needs EMULATOR, WORK and ROOT.
ready=$WORK/ready.json
rm -f "$ready"
"$EMULATOR" --ready-file "$ready" --seed-dir "$ROOT/softhsm-fixtures/keys" >"$WORK/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; wait $emulator 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "the emulator did not start:"; cat "$WORK/emulator.log"; exit 1; }

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"; }
for host in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["hosts"]))' "$ready"); do
    if ! getent hosts "$host" >/dev/null; then
        if [ -w /etc/hosts ]; then
            echo "127.0.0.1 $host" >>/etc/hosts
        else
            echo "$host does not resolve and /etc/hosts is not writable: add '127.0.0.1 $host'"
            exit 1
        fi
    fi
done
