"""The command-line interface: --help documents every option, a second instance starts
in under a second on free ports, writes its ready file atomically, seeds, and stops
cleanly on SIGTERM (removing the ready file)."""

import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("KV_EMULATOR_BIN", "")
OPTIONS = ["--ready-file", "--port", "--admin-port", "--config", "--seed-dir", "--vault", "--hsm"]


@pytest.fixture(scope="module")
def binary():
    if not BIN or not os.access(BIN, os.X_OK):
        pytest.fail("KV_EMULATOR_BIN must name the kv-emulator binary (ci.sh sets it)")
    return BIN


def test_help_documents_every_option(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for opt in OPTIONS:
        assert opt in out.stdout, opt


def test_starts_fast_and_stops_cleanly(binary):
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    with tempfile.TemporaryDirectory() as d:
        ready = os.path.join(d, "ready.json")
        t0 = time.time()
        p = subprocess.Popen([binary, "--ready-file", ready, "--port", "0", "--admin-port", "0", "--vault", "other",
                              "--hsm", "otherhsm", "--seed-dir", os.path.join(repo, "softhsm-fixtures", "keys")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not os.path.exists(ready) and time.time() - t0 < 10:
                time.sleep(0.01)
            elapsed = time.time() - t0
            assert os.path.exists(ready), "no ready file"
            assert elapsed < 1.0, f"took {elapsed:.2f} s to be ready"
            info = json.load(open(ready))
            for field in ("vault_url", "hsm_url", "ca_file", "authority_host", "tenant_id", "client_id",
                          "client_secret", "admin_url", "identity_endpoint", "identity_header", "hosts"):
                assert info[field], field
            assert info["vault_url"] == f"https://other.vault.localhost:{info['port']}"
            assert info["hsm_url"] == f"https://otherhsm.managedhsm.localhost:{info['port']}"
            assert info["authority_host"] == f"https://login.localhost:{info['port']}"
            assert info["admin_url"] == f"http://127.0.0.1:{info['admin_port']}"
            assert "BEGIN CERTIFICATE" in open(info["ca_file"]).read()
            assert sorted(info["seeded"]) == ["p256", "rsa2048", "rsa3072"]
            assert not [f for f in os.listdir(d) if f.endswith(".tmp")]
        finally:
            p.send_signal(signal.SIGTERM)
            code = p.wait(timeout=10)
        assert code == 0, p.stderr.read()
        assert not os.path.exists(ready), "the ready file is removed on exit"


def test_bad_config_is_refused_with_the_key(binary):
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "bad.toml")
        with open(cfg, "w") as f:
            f.write("[throttle]\nscael = 1.0\n")
        out = subprocess.run([binary, "--ready-file", os.path.join(d, "r.json"), "--config", cfg],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert "scael" in out.stderr and "bad.toml" in out.stderr
        with open(cfg, "w") as f:
            f.write('[[role_assignment]]\nprincipal = "x"\nrole = "Key Vault Wizard"\nscope = "vault"\n')
        out = subprocess.run([binary, "--ready-file", os.path.join(d, "r.json"), "--config", cfg],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "Key Vault Wizard" in out.stderr
