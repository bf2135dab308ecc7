"""Locating tests/kv-contract/azure (recordings and OpenAPI files, with their provenance) and
validating bodies against the swagger definitions with jsonschema."""

import json
import os
import re

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def shared_azure():
    """The Azure facts folder: $KV_SHARED_AZURE, else tests/kv-contract/azure in this repo."""
    path = os.environ.get("KV_SHARED_AZURE") or os.path.join(REPO, "tests", "kv-contract", "azure")
    path = os.path.abspath(path)
    if not os.path.isdir(os.path.join(path, "recordings")):
        raise RuntimeError(f"no recordings under {path}; set KV_SHARED_AZURE to a folder with recordings/ and the OpenAPI files")
    return path


def _strip_nulls(v):
    # Azure sends null for absent optional members (e.g. the last page's nextLink); the
    # swagger types them without x-nullable, so nulls are dropped before validation.
    if isinstance(v, dict):
        return {k: _strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_nulls(x) for x in v]
    return v


class Spec:
    """One swagger file: its paths as regexes and its definitions as JSON Schema."""

    def __init__(self, filename):
        with open(os.path.join(shared_azure(), filename), encoding="utf-8") as f:
            self.doc = json.load(f)
        self.uri = "urn:" + filename
        self.registry = Registry().with_resource(self.uri, Resource.from_contents(self.doc, default_specification=DRAFT4))
        self.routes = []
        for template, ops in self.doc["paths"].items():
            parts = template.strip("/").split("/")
            regex = "^/" + "/".join("[^/]*" if p.startswith("{") else re.escape(p) for p in parts) + "$"
            literal = sum(1 for p in parts if not p.startswith("{"))
            for method, op in ops.items():
                if method == "parameters":
                    continue
                self.routes.append((method.upper(), re.compile(regex, re.I), literal, template, op))

    def operation(self, method, path):
        """The swagger operation for a request, preferring the most literal template."""
        segs = path.strip("/").split("/")
        crypto = {"sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"}
        if len(segs) == 3 and segs[0].lower() == "keys" and segs[2].lower() in crypto:
            path = "/" + "/".join([segs[0], segs[1], "", segs[2]])
        elif len(segs) == 2 and method in ("GET", "PATCH") and segs[0].lower() in ("keys", "certificates"):
            path = "/" + "/".join([segs[0], segs[1], ""])  # the latest version
        found = [r for r in self.routes if r[0] == method and r[1].match(path)]
        if not found:
            return None
        return max(found, key=lambda r: r[2])

    def validator(self, schema_ref):
        return Draft4Validator({"$ref": f"{self.uri}{schema_ref}"}, registry=self.registry)

    def errors(self, method, path, status, body):
        """Schema errors of a response body (empty list when it validates)."""
        op = self.operation(method, path)
        if op is None:
            return [f"no swagger operation for {method} {path}"]
        responses = op[4]["responses"]
        resp = responses.get(str(status)) or (responses.get("default") if status >= 400 else None)
        if resp is None:
            return [f"status {status} is not a documented response of {op[3]}"]
        schema = resp.get("schema")
        if schema is None:
            return [] if body in (None, "") else [f"{op[3]} {status} has no body in the spec"]
        ref = schema["$ref"]
        v = self.validator(ref[ref.index("#"):])
        return [f"{e.json_path}: {e.message}" for e in v.iter_errors(_strip_nulls(body))]


_SPECS = {}


def spec_for(path):
    name = "certificates.2026-04-01.json" if path.strip("/").split("/")[0].lower() in (
        "certificates", "deletedcertificates") else "keys.2026-04-01.json"
    if name not in _SPECS:
        _SPECS[name] = Spec(name)
    return _SPECS[name]
