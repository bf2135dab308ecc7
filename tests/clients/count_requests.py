"""The request counts the architecture promises, read from the emulator's /stats.

usage: count_requests.py MODULE TOKEN_LABEL PIN RSA_LABEL EC_LABEL ADMIN_URL

Through python-pkcs11 (which asks for the signature length with a NULL buffer before it
signs or decrypts), in one process against a key-vault slot whose refresh interval is
longer than the run:
  1. the first search, by label, is answered from a lookup of that key (its GET and its
     certificate's; the whole listing follows in the background), and a search without a
     label waits for the listing; 200 more searches, attribute reads and public-key
     verifications after it send no request at all;
  2. each signature is exactly one `sign` request (the length query sends none), for RSA
     PKCS#1 v1.5, RSA-PSS and ECDSA;
  3. each decryption is exactly one `decrypt` request (OAEP and PKCS#1 v1.5);
  4. nothing else is sent meanwhile (no key fetch, no listing, no token request).
Prints "ok NAME" / "FAIL NAME: why" per check, then "N passed, N failed"; exits 1 on a
failure.
"""
import json
import sys
import urllib.request

import pkcs11
from pkcs11 import Attribute, Mechanism, MGF, ObjectClass

MODULE, TOKEN, PIN, RSA, EC, ADMIN = sys.argv[1:]
results = []


def stats() -> dict:
    with urllib.request.urlopen(f"{ADMIN}/stats", timeout=10) as r:
        return json.load(r)


def delta(before: dict, after: dict) -> dict:
    """Requests by operation sent between two snapshots (only the non-zero ones)."""
    ops = set(before["by_operation"]) | set(after["by_operation"])
    d = {op: after["by_operation"].get(op, 0) - before["by_operation"].get(op, 0) for op in ops}
    return {op: n for op, n in d.items() if n}


def check(name: str, got: dict, want: dict) -> None:
    if got == want:
        results.append(True)
        print(f"ok   {name}")
    else:
        results.append(False)
        print(f"FAIL {name}: sent {got}, expected {want}")


lib = pkcs11.lib(MODULE)
token = lib.get_token(token_label=TOKEN)
data = b"identify-pkcs11 request counts" * 10
with token.open(user_pin=PIN) as session:
    start = stats()
    rsa = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=RSA)
    looked_up = stats()
    first = delta(start, looked_up)
    if first.get("get_key", 0) >= 1 and first.get("get_certificate", 0) >= 1 \
            and not {"sign", "decrypt"} & set(first):
        results.append(True)
        print(f"ok   the first search, by label, is a lookup of that key ({first})")
    else:
        results.append(False)
        print(f"FAIL the first search, by label, is a lookup of that key: sent {first}")
    certificates = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
    listed = stats()
    listing = delta(start, listed)
    if listing.get("list_keys", 0) >= 1 and len(certificates) >= 2:
        results.append(True)
        print(f"ok   a search without a label waits for the listing ({sum(listing.values())} requests in all)")
    else:
        results.append(False)
        print(f"FAIL a search without a label waits for the listing: sent {listing}, {len(certificates)} certificates")

    for _ in range(200):
        priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=RSA)
        pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=RSA)
        pub[Attribute.MODULUS]
        priv[Attribute.KEY_TYPE]
        list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=EC)
    check("200 searches and attribute reads send nothing", delta(listed, stats()), {})

    rsa_pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=RSA)
    ec = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=EC)
    ec_pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=EC)
    pss = (Mechanism.SHA256, MGF.SHA256, 32)
    oaep = (Mechanism.SHA256, MGF.SHA256, None)
    for name, key, pub, mech, param in [
        ("RSA PKCS#1 v1.5", rsa, rsa_pub, Mechanism.SHA256_RSA_PKCS, None),
        ("RSA-PSS", rsa, rsa_pub, Mechanism.SHA256_RSA_PKCS_PSS, pss),
        ("ECDSA", ec, ec_pub, Mechanism.ECDSA_SHA256, None),
    ]:
        before = stats()
        signature = key.sign(data, mechanism=mech, mechanism_param=param)
        check(f"one {name} signature is one sign request", delta(before, stats()), {"sign": 1})
        before = stats()
        ok = pub.verify(data, signature, mechanism=mech, mechanism_param=param)
        check(f"verifying the {name} signature sends nothing", delta(before, stats()), {})
        if not ok:
            results.append(False)
            print(f"FAIL the {name} signature does not verify")

    for name, mech, param in [
        ("OAEP", Mechanism.RSA_PKCS_OAEP, oaep),
        ("PKCS#1 v1.5", Mechanism.RSA_PKCS, None),
    ]:
        secret = b"a wrapped AES key, 32 bytes long"
        ciphertext = rsa_pub.encrypt(secret, mechanism=mech, mechanism_param=param)
        before = stats()
        plain = rsa.decrypt(ciphertext, mechanism=mech, mechanism_param=param)
        check(f"one {name} decryption is one decrypt request", delta(before, stats()), {"decrypt": 1})
        if plain != secret:
            results.append(False)
            print(f"FAIL the {name} decryption gave other bytes")

print(f"{results.count(True)} passed, {results.count(False)} failed")
sys.exit(0 if all(results) else 1)
