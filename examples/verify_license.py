#!/usr/bin/env python3
"""What a product does with keyledger's license answers, in Python (README, "Verifying
licenses in your product"; DESIGN §6.15): the same steps, options, store and output as
examples/verify_license.rs, with `cryptography` for the Keyledger-Signature of an answer and
PyJWT for the license file. Only the standard library otherwise.

    pip install cryptography PyJWT
    verify_license.py --server URL --license-key KEY --installation-id ID --store DIR
                      [--ttl-seconds 604800] [--max-skew-seconds 300] [--issuer keyledger] [--jwks FILE]

Exits 0 when the product may run, 1 when not (tests/it/licenses_recipes.rs runs it).
"""

import argparse
import base64
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Untrusted(Exception):
    """No answer to trust: the product falls back to its stored license file."""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--license-key", required=True)
    p.add_argument("--installation-id", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--ttl-seconds", type=int, default=7 * 86400)
    p.add_argument("--max-skew-seconds", type=int, default=300)
    p.add_argument("--issuer", default="keyledger")
    p.add_argument("--jwks")
    args = p.parse_args()
    try:
        licensed = online(args)
    except Untrusted as e:
        print(f"no trustworthy answer: {e}")
        licensed = offline(args)
    sys.exit(0 if licensed else 1)


def online(args):
    if args.jwks:
        keys = read_json(args.jwks)
        if keys is None:
            raise Untrusted("the pinned JWKS is unreadable")
    else:
        status, _, body = call(args.server + "/v1/licenses/signing-keys")
        if status != 200:
            raise Untrusted(f"HTTP {status} for the signing keys")
        try:
            keys = json.loads(body)
        except ValueError:
            raise Untrusted("the signing keys are not JSON") from None
        store(args, "signing-keys.json", json.dumps(keys))
    request = {"license_key": args.license_key, "installation_id": args.installation_id}
    answer, kid = post_verified(args, keys, "validate", request)
    print(f"online: {answer.get('code')} (signed by {kid}, nonce echoed, ts fresh)")
    if answer.get("valid") is not True:
        # A signed refusal is final: the stored file must not outlive a suspension.
        try:
            os.remove(os.path.join(args.store, "license.jwt"))
            print("license file removed")
        except FileNotFoundError:
            pass
        print(f"not licensed: {answer.get('code')}")
        return False
    try:
        checkout, _ = post_verified(args, keys, "checkout", {**request, "ttl_seconds": args.ttl_seconds})
        if checkout.get("valid") is not True:
            raise Untrusted(checkout.get("code"))
        file = checkout.get("license_file")
        if not isinstance(file, str):
            raise Untrusted("no license file in the answer")
        claims, _ = verify_license_file(args, keys, file)
        store(args, "license.jwt", file)
        print(f"license file stored (exp {claims['exp']})")
    except (Untrusted, ValueError) as e:
        print(f"license file not renewed: {e}")
    print("licensed: online")
    return True


def offline(args):
    """The stored license file, verified offline: accepted until its exp, not a second longer."""
    try:
        with open(os.path.join(args.store, "license.jwt"), encoding="utf-8") as f:
            file = f.read().strip()
    except OSError:
        print("not licensed: no stored license file")
        return False
    keys = read_json(args.jwks or os.path.join(args.store, "signing-keys.json"))
    if keys is None:
        print("not licensed: no stored signing keys")
        return False
    try:
        claims, kid = verify_license_file(args, keys, file)
    except ValueError as e:
        print(f"not licensed: stored license file refused: {e}")
        return False
    print(f"offline: license file verified (signed by {kid})")
    print(f"licensed: offline until {claims['exp']}")
    return True


def post_verified(args, keys, route, body):
    """POSTs body with a fresh nonce; returns the answer and the signing key id once its
    signature, nonce and ts are checked."""
    nonce = secrets.token_hex(16)
    status, header, raw = call(f"{args.server}/v1/licenses/{route}", {**body, "nonce": nonce})
    if status != 200:
        raise Untrusted(f"HTTP {status}")
    if header is None:
        raise Untrusted("the answer is not signed")
    # The exact bytes: the signature covers them, not a re-serialisation of the JSON.
    kid = verify_signature(keys, header, raw)
    answer = json.loads(raw)
    if answer.get("nonce") != nonce:
        raise Untrusted("the nonce is not echoed (a replayed answer)")
    try:
        ts = datetime.fromisoformat(answer["ts"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        raise Untrusted("the answer has no ts") from None
    if abs((datetime.now(timezone.utc) - ts).total_seconds()) > args.max_skew_seconds:
        raise Untrusted(f"ts {ts} is more than {args.max_skew_seconds}s away (a delayed or replayed answer)")
    return answer, kid


def verify_signature(keys, header, body):
    """Checks `Keyledger-Signature: keyid="s1", alg="ed25519", sig="…"` over exactly body with
    the key keyid of the JWKS; returns the key id."""
    params = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    kid, alg, sig = (params.get(k, "").strip('"') for k in ("keyid", "alg", "sig"))
    if alg != "ed25519" or not sig:
        raise Untrusted("malformed Keyledger-Signature")
    jwk = public_key(keys, kid)
    if jwk is None:
        raise Untrusted(f"unknown signing key {kid}")
    try:
        Ed25519PublicKey.from_public_bytes(b64url(jwk["x"])).verify(b64url(sig), body)
    except (InvalidSignature, ValueError):
        raise Untrusted("the signature does not verify (a forged or changed answer)") from None
    return kid


def verify_license_file(args, keys, file):
    """Verifies a license file (compact JWS, EdDSA) with the key its header names: signature,
    iss, exp (no leeway), nbf (the clock skew allowed for ts) and the installation."""
    try:
        kid = jwt.get_unverified_header(file).get("kid")
        jwk = public_key(keys, kid)
        if jwk is None:
            raise ValueError(f"unknown signing key {kid}")
        claims = jwt.decode(
            file,
            jwt.PyJWK(jwk).key,
            algorithms=["EdDSA"],
            issuer=args.issuer,
            leeway=0,
            options={"require": ["exp", "nbf", "iss", "sub"], "verify_nbf": False},
        )
    except jwt.ExpiredSignatureError:
        raise ValueError("expired") from None
    except jwt.InvalidSignatureError:
        raise ValueError("the signature does not verify") from None
    except jwt.PyJWTError as e:
        raise ValueError(str(e)) from None
    if claims.get("installation_id") != args.installation_id:
        raise ValueError("issued to another installation")
    if not isinstance(claims.get("nbf"), int) or claims["nbf"] > time.time() + args.max_skew_seconds:
        raise ValueError("not valid yet")
    return claims, kid


def public_key(keys, kid):
    """The JWK of key kid of a JWKS (an Ed25519 public key), or None."""
    return next((k for k in keys.get("keys", []) if k.get("kid") == kid and k.get("kty") == "OKP"), None)


def call(url, body=None):
    """(status, Keyledger-Signature header, exact body bytes); Untrusted when unreachable."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers.get("keyledger-signature"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, None, e.read()
    except (OSError, ValueError) as e:
        raise Untrusted(f"server unreachable: {e}") from None


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def store(args, name, contents):
    """Replaces name in the store whole (a crash never leaves half a file)."""
    try:
        os.makedirs(args.store, exist_ok=True)
        partial = os.path.join(args.store, name + ".partial")
        with open(partial, "w", encoding="utf-8") as f:
            f.write(contents)
        os.replace(partial, os.path.join(args.store, name))
    except OSError:
        print(f"cannot write {name} in {args.store}")


if __name__ == "__main__":
    main()
