#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/seed-* from the repository's own
fixtures (softhsm-fixtures/), the README's configuration examples and the recorded Azure
exchanges (tests/kv-contract/azure/recordings). Run from anywhere; deterministic."""
import base64, hashlib, json, os, random, re, subprocess, struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "softhsm-fixtures")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(*p):
    with open(os.path.join(*p), "rb") as f:
        return f.read()


def der_of(pem_path):
    return subprocess.run(["openssl", "x509", "-outform", "DER", "-in", pem_path],
                          check=True, capture_output=True).stdout


def spki_of(pem_path):
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", pem_path],
                         check=True, capture_output=True).stdout
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          check=True, capture_output=True).stdout


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---- certs_config: 0 + config text; 1 + DER; 2 + flags + files joined by --8<--
SEP = b"--8<--"
keys = os.path.join(FIX, "keys")
for n in ["rsa2048", "rsa3072", "p256"]:
    write("certs_config", f"der-{n}", b"\x01" + der_of(os.path.join(keys, f"{n}.crt.pem")))
    write("certs_config", f"entry-{n}", b"\x02" + bytes([0b0110]) +
          read(keys, f"{n}.key.pem") + SEP + read(keys, f"{n}.crt.pem"))
write("certs_config", "entry-p12", b"\x02" + bytes([0b00001]) + read(FIX, "pkcs12", "chain.p12"))
write("certs_config", "entry-p12-password", b"\x02" + bytes([0b10001]) +
      read(FIX, "pkcs12", "chain.p12") + SEP + b"wrong")
write("certs_config", "entry-chain-only", b"\x02" + bytes([0b0100]) +
      read(FIX, "pkcs12", "leaf.crt.pem") + read(FIX, "pkcs12", "ca.crt.pem"))
write("certs_config", "entry-meta", b"\x02" + bytes([0b1110]) + read(keys, "p256.key.pem") + SEP +
      read(keys, "p256.crt.pem") + SEP +
      b'{"key_label":"k","key_id":"0102","cert_label":"c","cert_id":"zz","local":true,"sign":false}')
# The README's configuration examples, as written there.
with open(os.path.join(ROOT, "README.md")) as f:
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", f.read(), re.S)):
        write("certs_config", f"config-readme-{i}", b"\x00" + block.encode())
configs = {
    "cert-store": '[log]\nlevel = "warn"\n\n[[slot]]\nlabel = "signing"\nkind = "cert-store"\npath = "/tmp"\nwritable = false\npin_hash = "$argon2id$v=19$m=8,t=1,p=1$ZnV6emluZy1zYWx0$3kGkT5ZbG7jFv3Yp6B1WlQ"\npin_tries = 10\npin_lockout_seconds = 300\nrefresh_seconds = 5\n',
    "windows": '[[slot]]\nlabel = "signing"\nkind = "cert-store"\nstore = "CurrentUser/My"\nwritable = true\n',
    "key-vault": '[[slot]]\nlabel = "identify"\nkind = "key-vault"\nvault = "https://contoso.vault.azure.net"\nkey_names = ["signing", "decryption"]\ntags = { env = "prod" }\nhsm_keys = false\nallow_destroy = false\nrefresh_seconds = 300\ndeadline_seconds = 10\nmax_retries = 4\nrate_budget = 0.9\ncertificates = "sqlite:///tmp/certs.db"\n[slot.credential]\ntype = "client-secret"\ntenant_id = "t"\nclient_id = "c"\nclient_secret = "not-a-secret"\nauthority_host = "https://login.microsoftonline.com"\n',
    "managed-hsm": '[[slot]]\nlabel = "hsm"\nkind = "managed-hsm"\nhsm = "https://contoso.managedhsm.azure.net"\ncertificates = "postgres://user@host/db"\nhsm_random = true\n[slot.credential]\ntype = "managed-identity"\nclient_id = "x"\n',
    "audit-metrics": '[audit]\nfile = "/tmp/audit.jsonl"\nmax_bytes = 10485760\nkeep = 5\n\n[metrics]\nfile = "/tmp/m_{pid}.prom"\ninterval_seconds = 15\n\n[[slot]]\nlabel = "a"\nkind = "cert-store"\npath = "."\n\n[[slot]]\nlabel = "a"\nkind = "cert-store"\npath = "."\n',
    "workload": '[[slot]]\nlabel = "w"\nkind = "key-vault"\nvault = "https://w.vault.azure.net/"\n[slot.credential]\ntype = "workload-identity"\n\n[[slot]]\nlabel = "x"\nkind = "key-vault"\nvault = "https://x.vault.azure.net/"\n[slot.credential]\ntype = "client-certificate"\ntenant_id = "t"\nclient_id = "c"\ncertificate_file = "/nonexistent.pem"\n',
}
for name, text in configs.items():
    write("certs_config", f"config-{name}", b"\x00" + text.encode())

# ---- azure_decode: 0 key bundle, 1 key page, 2 certificate bundle / page, 3 status + error body
rec = os.path.join(ROOT, "tests", "kv-contract", "azure", "recordings")
seen = set()
for f in sorted(os.listdir(rec)):
    if not f.endswith(".json"):
        continue
    for i, e in enumerate(json.load(open(os.path.join(rec, f)))["Entries"]):
        body = e.get("ResponseBody")
        if not isinstance(body, dict):
            continue
        raw = json.dumps(body, separators=(",", ":")).encode()
        status = e.get("StatusCode", 200)
        if "error" in body:
            kind, data = "error", b"\x03" + struct.pack(">H", status) + raw
        elif "key" in body:
            kind, data = "key", b"\x00" + raw
        elif "value" in body and isinstance(body["value"], list):
            kind, data = "page", b"\x01" + raw
        elif "cer" in body or "x5t" in body:
            kind, data = "cert", b"\x02" + raw
        else:
            continue
        h = hashlib.sha1(data).hexdigest()[:8]
        if h in seen:
            continue
        seen.add(h)
        write("azure_decode", f"{kind}-{f[:-5]}-{i}", data)
# An EC key bundle from the P-256 fixture (x, y from the SPKI's uncompressed point).
spki = spki_of(os.path.join(keys, "p256.crt.pem"))
point = spki[-65:]
ec = {"key": {"kid": "https://v.vault.azure.net/keys/p256/0123456789abcdef0123456789abcdef",
              "kty": "EC-HSM", "key_ops": ["sign", "verify"], "crv": "P-256",
              "x": b64u(point[1:33]), "y": b64u(point[33:])},
      "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000,
                     "recoveryLevel": "Recoverable"},
      "tags": {"pkcs11-label": "p256", "pkcs11-id": "0a0b0c"}}
write("azure_decode", "key-ec-p256", b"\x00" + json.dumps(ec).encode())
page = {"value": [{"kid": "https://v.vault.azure.net/keys/a/1", "attributes": {"enabled": True, "created": 1},
                   "tags": {"env": "prod"}},
                  {"kid": "https://v.vault.azure.net/keys/b", "attributes": {"enabled": False}}],
        "nextLink": "https://v.vault.azure.net/keys?api-version=7.6&$skiptoken=abc&maxresults=25"}
write("azure_decode", "page-next-link", b"\x01" + json.dumps(page).encode())
cert = {"id": "https://v.vault.azure.net/certificates/rsa2048/0123",
        "cer": base64.b64encode(der_of(os.path.join(keys, "rsa2048.crt.pem"))).decode(),
        "attributes": {"enabled": True}}
write("azure_decode", "cert-rsa2048", b"\x02" + json.dumps(cert).encode())
for status, code, inner, msg in [
    (403, "Forbidden", "ForbiddenByRbac",
     "Caller is not authorized to perform action on resource.\r\nCaller: appid=1;oid=2\r\nAction: 'Microsoft.KeyVault/vaults/keys/sign/action'\r\n"),
    (403, "Forbidden", "KeyOperationForbidden", "Operation sign is not permitted on this key."),
    (403, "Forbidden", "KeyDisabled", "Operation get is not allowed on a disabled key."),
    (404, "KeyNotFound", None, "A key with (name/id) x was not found in this key vault."),
    (429, "Throttled", None, "Rate limit exceeded.\nTry again later."),
    (401, "Unauthorized", None, "AKV10000: Request is missing a Bearer or PoP token."),
    (400, "BadParameter", None, "Invalid algorithm"),
    (503, "ServiceUnavailable", None, ""),
]:
    err = {"error": {"code": code, "message": msg}}
    if inner:
        err["error"]["innererror"] = {"code": inner}
    write("azure_decode", f"error-{status}-{inner or code}",
          b"\x03" + struct.pack(">H", status) + json.dumps(err).encode())

# ---- mechanism_params: DigestInfo of each hash, then structured inputs.
prefixes = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"), "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"), "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
for name, p in prefixes.items():
    write("mechanism_params", f"digestinfo-{name}", p + hashlib.new(name, b"abc").digest())
write("mechanism_params", "spki-rsa2048", spki_of(os.path.join(keys, "rsa2048.crt.pem")))
write("mechanism_params", "spki-p256", spki)
rng = random.Random(1)
for i in range(8):
    write("mechanism_params", f"random-{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(16, 400))))

# ---- c_abi: byte streams the harness decodes into calls (structure is learnt quickly).
for i in range(12):
    write("c_abi", f"random-{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(32, 1024))))
