#!/usr/bin/env python3
"""An independent pinwave bundle verifier: Python's cbor2 and PyNaCl (libsodium), sharing no code
with the TypeScript implementation. Reads docs/architecture.md §3 (and docs/bundle-format.md) only.

usage: verify_bundle.py BUNDLE_FILE PUBLIC_KEY_HEX [GROUP]
Prints the decoded bundle as JSON and exits 0 if it verifies, or prints the failure and exits 1.
"""
import hashlib
import json
import sys

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

AAD = b"pinwave/v1"


def fail(why):
    print(json.dumps({"ok": False, "error": why}))
    sys.exit(1)


def main():
    data = open(sys.argv[1], "rb").read()
    public_key = bytes.fromhex(sys.argv[2])
    group = sys.argv[3] if len(sys.argv) > 3 else None

    msg = cbor2.loads(data)
    if not isinstance(msg, cbor2.CBORTag) or msg.tag != 18:
        fail("not tag 18")
    protected, unprotected, payload, signature = msg.value
    if unprotected != {}:
        fail("unprotected header not empty")
    header = cbor2.loads(protected)
    if header.get(1) != -8:
        fail("alg is not EdDSA")
    kid = hashlib.sha256(public_key).digest()[:8]
    if header.get(4) != kid:
        fail("kid does not match the key")
    # RFC 9052 section 4.4: Sig_structure, with pinwave's external_aad
    to_be_signed = cbor2.dumps(["Signature1", protected, AAD, payload])
    try:
        VerifyKey(public_key).verify(to_be_signed, signature)
    except BadSignatureError:
        fail("bad signature")
    # re-encoding with cbor2's canonical mode must give the same bytes (deterministic encoding)
    body = cbor2.loads(payload)
    if cbor2.dumps(body, canonical=True) != payload:
        fail("payload is not in deterministic encoding")
    if body[1] != 1:
        fail("unsupported version")
    if group is not None and body[5] != group:
        fail("wrong group")
    endpoints = []
    for e in body[6]:
        pins = e[3]
        if len(set(pins)) < 2 or any(len(p) != 32 for p in pins):
            fail("weak pin set")
        import base64
        endpoints.append({
            "host": e[1], "port": e[2],
            "pins": ["sha256/" + base64.b64encode(p).decode() for p in pins],
            "mode": "report-only" if e.get(4) == 1 else "enforce",
        })
    print(json.dumps({
        "ok": True,
        "id": hashlib.sha256(payload).hexdigest(),
        "seq": body[2], "iat": body[3], "exp": body[4], "group": body[5],
        "endpoints": endpoints,
        "size": len(data),
    }))


if __name__ == "__main__":
    main()
