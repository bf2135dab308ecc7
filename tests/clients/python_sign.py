"""Sign a file with python-pkcs11 and write an openssl-verifiable signature.

usage: python_sign.py MODULE TOKEN_LABEL PIN KEY_LABEL MECHANISM INPUT OUTPUT

MECHANISM is a python-pkcs11 Mechanism name (SHA256_RSA_PKCS, ECDSA, ECDSA_SHA256, ...).
The private key is found by CKA_LABEL. ECDSA signatures (raw r||s from the token) are
written DER-encoded, the form openssl verifies.
"""
import sys

import pkcs11
from pkcs11 import Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature


def main() -> None:
    module, token_label, pin, key_label, mechanism, infile, outfile = sys.argv[1:]
    token = pkcs11.lib(module).get_token(token_label=token_label)
    with open(infile, "rb") as f:
        data = f.read()
    with token.open(user_pin=pin) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        signature = key.sign(data, mechanism=Mechanism[mechanism])
    if mechanism.startswith("ECDSA"):
        signature = encode_ecdsa_signature(signature)
    with open(outfile, "wb") as f:
        f.write(signature)


if __name__ == "__main__":
    main()
