#!/usr/bin/env python3
"""An independent pinwave bundle verifier: Python's cbor2 and PyNaCl (libsodium), sharing no code
with the TypeScript implementation. Written from docs/bundle-format.md alone: its rules, in its order,
give the same rejection reasons.

usage:
  verify_bundle.py BUNDLE_FILE PUBLIC_KEY_HEX [GROUP]
      Checks the format (rules 1 to 38) for a device that trusts the key, and the group (rule 39) if
      given. Prints the decoded bundle as JSON and exits 0 if it passes, or prints
      {"ok": false, "reason", "error"} and exits 1.
  verify_bundle.py --vector VECTOR.json ...
      Runs each conformance vector as the device it describes (its state, its clock, rules 1 to 44)
      and prints one JSON line per vector: {"name", "result": "applied", "id", "stateAfter"} or
      {"name", "result": "rejected", "reason", "error"}. Exits 0.
"""
import base64
import hashlib
import io
import json
import re
import sys

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

AAD = b"pinwave/v1"
MAX_SAFE = 2**53 - 1
PAYLOAD_KEYS = {1, 2, 3, 4, 5, 6, 7, 8}
ENDPOINT_KEYS = {1, 2, 3, 4, 5, 6}
ROTATION_KEYS = {1, 2}
HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
IPV6 = re.compile(r"^[0-9a-f:.]+$")


class Rejected(Exception):
    def __init__(self, reason, why):
        super().__init__(why)
        self.reason = reason


def malformed(why):
    return Rejected("malformed", why)


def strict(data, what):
    """One CBOR item that fills `data` exactly, in deterministic encoding (rules 2 to 5, 13, 21)."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises several types on bad input
        raise malformed(f"{what}: not well-formed CBOR ({e})")
    if stream.tell() != len(data):
        raise malformed(f"{what}: {len(data) - stream.tell()} bytes after the data item")
    # cbor2's canonical mode writes shortest forms, definite lengths and sorted keys; for the
    # non-negative integer keys of this format its order is RFC 8949's.
    try:
        again = cbor2.dumps(value, canonical=True)
    except Exception as e:
        raise malformed(f"{what}: outside the data model ({e})")
    if again != data:
        raise malformed(f"{what}: not in deterministic encoding")
    return value


def is_int(v):
    return type(v) is int  # bool is an int subclass: CBOR true is not 1


def uint(v, what):
    if not is_int(v) or v < 0:
        raise malformed(f"{what} must be an unsigned integer")
    if v > MAX_SAFE:
        raise malformed(f"{what} is above 2^53 - 1")
    return v


def text(v, what):
    if type(v) is not str:
        raise malformed(f"{what} must be a text string")
    return v


def byte_string(v, what):
    if type(v) is not bytes:
        raise malformed(f"{what} must be a byte string")
    return v


def only_keys(m, allowed, what):
    for k in m:
        if k not in allowed:
            raise malformed(f"{what} has unknown key {k!r}")


def kid_of(key):
    return hashlib.sha256(key).digest()[:8]


def envelope(data, max_bytes):
    """Rules 1 to 17."""
    if len(data) > max_bytes:
        raise Rejected("too_large", f"{len(data)} bytes, the limit is {max_bytes}")
    msg = strict(data, "message")
    if not isinstance(msg, cbor2.CBORTag) or msg.tag != 18:
        raise malformed("not tag 18")
    parts = msg.value
    if type(parts) is not list or len(parts) != 4:
        raise malformed("tag 18 must hold an array of 4")
    protected, unprotected, payload, signature = parts
    byte_string(protected, "protected header")
    if type(unprotected) is not dict or unprotected:
        raise malformed("unprotected header must be an empty map")
    byte_string(payload, "payload")
    if type(signature) is not bytes or len(signature) != 64:
        raise malformed("signature must be a byte string of 64 bytes")
    header = strict(protected, "protected header")
    if type(header) is not dict:
        raise malformed("protected header must be a map")
    for label in header:
        if label not in (1, 4):
            raise malformed(f"protected header label {label!r}")
    if 1 not in header or not is_int(header[1]):
        raise malformed("alg missing or not an integer")
    kid = header.get(4)
    if type(kid) is not bytes or len(kid) != 8:
        raise malformed("kid missing or not 8 bytes")
    if header[1] != -8:
        raise Rejected("unsupported_alg", f"alg {header[1]} is not EdDSA (-8)")
    return protected, payload, signature, kid


def signature_check(protected, payload, signature, kid, keys):
    """Rules 18 to 20. libsodium's verify is strict: S < L, canonical points, no small-order keys."""
    key = next((k for k in keys if kid_of(k) == kid), None)
    if key is None:
        raise Rejected("unknown_key", f"no trusted key has kid {kid.hex()}")
    to_be_signed = cbor2.dumps(["Signature1", protected, AAD, payload])  # RFC 9052 section 4.4
    try:
        VerifyKey(key).verify(to_be_signed, signature)
    except (BadSignatureError, ValueError):
        raise Rejected("bad_signature", "the signature does not verify")


def payload_check(payload, accepted_versions):
    """Rules 21 to 38; returns the bundle as a dict of named fields."""
    body = strict(payload, "payload")
    if type(body) is not dict:
        raise malformed("payload must be a map")
    if 1 not in body or not is_int(body[1]):
        raise malformed("version missing or not an integer")
    if body[1] not in accepted_versions:
        raise Rejected("unsupported_version", f"format version {body[1]}")
    # Shape (rules 22 to 28): every violation is malformed, so their order does not matter.
    only_keys(body, PAYLOAD_KEYS, "payload")
    for k in (2, 3, 4, 5, 6):
        if k not in body:
            raise malformed(f"payload key {k} missing")
    b = {
        "seq": uint(body[2], "seq"),
        "iat": uint(body[3], "iat"),
        "exp": uint(body[4], "exp"),
        "group": text(body[5], "group"),
        "endpoints": [],
        "rotation": None,
        "policy": "enforce",
    }
    if type(body[6]) is not list:
        raise malformed("endpoints must be an array")
    for i, e in enumerate(body[6]):
        if type(e) is not dict:
            raise malformed(f"endpoint {i} must be a map")
        only_keys(e, ENDPOINT_KEYS, f"endpoint {i}")
        for k in (1, 2, 3):
            if k not in e:
                raise malformed(f"endpoint {i} key {k} missing")
        if type(e[3]) is not list:
            raise malformed(f"endpoint {i} pins must be an array")
        endpoint = {
            "host": text(e[1], "host"),
            "port": uint(e[2], "port"),
            "pins": [byte_string(p, "pin") for p in e[3]],
            "mode": "enforce",
        }
        if 4 in e:
            if e[4] != 1 or not is_int(e[4]):
                raise malformed("mode must be absent or 1")  # rule 28: a default is omitted
            endpoint["mode"] = "report-only"
        for k, name in ((5, "notBefore"), (6, "notAfter")):
            if k in e:
                endpoint[name] = uint(e[k], name)
        b["endpoints"].append(endpoint)
    if 7 in body:
        r = body[7]
        if type(r) is not dict:
            raise malformed("key rotation must be a map")
        only_keys(r, ROTATION_KEYS, "key rotation")
        if 1 not in r or 2 not in r or type(r[2]) is not list:
            raise malformed("key rotation needs an epoch and a list of keys")
        b["rotation"] = {"epoch": uint(r[1], "epoch"), "keys": [byte_string(k, "key") for k in r[2]]}
    if 8 in body:
        if body[8] != 1 or not is_int(body[8]):
            raise malformed("expiry policy must be absent or 1")
        b["policy"] = "ca-fallback"
    # Content (rules 29 to 38), in this order.
    if b["exp"] <= b["iat"]:
        raise malformed("exp must be after iat")
    if not 1 <= utf16_length(b["group"]) <= 64:
        raise malformed("group must be 1 to 64 characters")
    if not b["endpoints"]:
        raise malformed("no endpoint")
    for e in b["endpoints"]:
        host = e["host"]
        if len(host) > 253 or not (HOST.match(host) or (":" in host and IPV6.match(host))):
            raise malformed(f"host {host!r}")
        if not 1 <= e["port"] <= 65535:
            raise malformed(f"port {e['port']}")
        if "notBefore" in e and "notAfter" in e and e["notAfter"] <= e["notBefore"]:
            raise malformed("notAfter must be after notBefore")
        if any(len(p) != 32 for p in e["pins"]):
            raise malformed("a pin is not 32 bytes")
        distinct = len(set(e["pins"]))
        if distinct < 2:
            raise Rejected("weak_pin_set", f"{host}:{e['port']} has {distinct} distinct pins")
        if distinct != len(e["pins"]):
            raise malformed("a pin is repeated")
    if b["rotation"] is not None:
        if not b["rotation"]["keys"] or any(len(k) != 32 for k in b["rotation"]["keys"]):
            raise malformed("key rotation needs keys of 32 bytes")
    return b


def utf16_length(s):
    return len(s.encode("utf-16-le")) // 2


def device_check(b, bundle_id, state, now):
    """Rules 39 to 44; returns the state after, or the same state for a re-delivery."""
    if b["group"] != state["group"]:
        raise Rejected("wrong_group", f"bundle is for {b['group']!r}")
    if bundle_id == state["bundleId"]:
        return state
    if b["seq"] <= state["seq"]:
        raise Rejected("replayed", f"seq {b['seq']} is not above {state['seq']}")
    skew = state["clockSkewSeconds"]
    if b["exp"] + skew <= now:
        raise Rejected("expired", "expired")
    if b["iat"] > now + skew:
        raise Rejected("not_yet_valid", "issued ahead of the device clock")
    after = dict(state)
    if b["rotation"] is not None:
        if b["rotation"]["epoch"] <= state["keyEpoch"]:
            raise Rejected("stale_key_epoch", f"key epoch {b['rotation']['epoch']} is not above {state['keyEpoch']}")
        after["keyEpoch"] = b["rotation"]["epoch"]
        after["trustedKeys"] = [b64(k) for k in b["rotation"]["keys"]]
    after["seq"] = b["seq"]
    after["bundleId"] = bundle_id
    after["endpoints"] = [
        {k: (v if k != "pins" else [b64(p) for p in v]) for k, v in e.items()} for e in b["endpoints"]
    ]
    after["exp"] = b["exp"]
    after["expiryPolicy"] = b["policy"]
    return after


def b64(raw):
    return base64.b64encode(raw).decode()


def verify(data, keys, max_bytes, accepted_versions):
    protected, payload, signature, kid = envelope(data, max_bytes)
    signature_check(protected, payload, signature, kid, keys)
    return payload_check(payload, accepted_versions), hashlib.sha256(payload).hexdigest()


def run_vector(path):
    v = json.load(open(path))
    state = v["stateBefore"]
    data = bytes.fromhex(v["bundle"])
    keys = [base64.b64decode(k) for k in state["trustedKeys"]]
    try:
        b, bundle_id = verify(data, keys, state["maxBundleBytes"], state["acceptedVersions"])
        after = device_check(b, bundle_id, state, v["now"])
    except Rejected as r:
        return {"name": v["name"], "result": "rejected", "reason": r.reason, "error": str(r)}
    return {"name": v["name"], "result": "applied", "id": bundle_id, "stateAfter": after}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--vector":
        for path in sys.argv[2:]:
            print(json.dumps(run_vector(path)))
        return
    data = open(sys.argv[1], "rb").read()
    public_key = bytes.fromhex(sys.argv[2])
    group = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        b, bundle_id = verify(data, [public_key], 4096, [1])
        if group is not None and b["group"] != group:
            raise Rejected("wrong_group", f"bundle is for {b['group']!r}")
    except Rejected as r:
        print(json.dumps({"ok": False, "reason": r.reason, "error": str(r)}))
        sys.exit(1)
    print(json.dumps({
        "ok": True,
        "id": bundle_id,
        "seq": b["seq"], "iat": b["iat"], "exp": b["exp"], "group": b["group"],
        "endpoints": [
            {"host": e["host"], "port": e["port"], "pins": ["sha256/" + b64(p) for p in e["pins"]], "mode": e["mode"]}
            for e in b["endpoints"]
        ],
        "size": len(data),
    }))


if __name__ == "__main__":
    main()
