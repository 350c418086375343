#!/usr/bin/env python3
"""Checks tollgate's access tokens with PyJWT, an independent JOSE implementation.

Verify mode (the default): fetches the JWKS over HTTP, picks the key named by the token's
`kid`, verifies the signature, the RFC 9068 header `typ: at+jwt` (or, with
`--typ publish+jwt`, a combined publish token's), `iss`, `aud` and the presence of the
registered claims, then prints the claims as JSON on stdout and exits 0.
Any refusal is printed to stderr with exit status 1.

    verify_pyjwt.py --jwks-url URL --issuer ISS --audience AUD --alg EdDSA --token JWT

Forge mode: prints on stdout a token built with PyJWT that tollgate must refuse, naming a
real `kid` from the JWKS (the first published key of --alg) and carrying valid-looking claims.

    verify_pyjwt.py --jwks-url URL --issuer ISS --audience AUD --alg EdDSA --forge KIND

    none                   alg "none", empty signature (RFC 7519 §6 unsecured JWT)
    hs256-with-public-key  HS256 keyed with the published public key (RFC 8725 §2.1)
    wrong-key              signed by a freshly generated key of --alg's type

Usage errors exit with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ACCESS_TOKEN_TYP = "at+jwt"
# RFC 9068 §2.2 (plus nbf, which tollgate always sets).
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "client_id"]
# Combined publish tokens (`--typ publish+jwt`): the user (sub) and the CI workload (act).
PUBLISH_TOKEN_TYP = "publish+jwt"
PUBLISH_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "act", "publish"]
FORGE_KINDS = ["none", "hs256-with-public-key", "wrong-key"]
ALGS = ["EdDSA", "ES256", "RS256"]


def verify(args: argparse.Namespace) -> dict:
    header = jwt.get_unverified_header(args.token)
    if header.get("typ") != args.typ:
        raise jwt.InvalidTokenError(f"header typ is {header.get('typ')!r}, expected {args.typ!r}")
    required = PUBLISH_REQUIRED_CLAIMS if args.typ == PUBLISH_TOKEN_TYP else REQUIRED_CLAIMS
    signing_key = jwt.PyJWKClient(args.jwks_url).get_signing_key_from_jwt(args.token)
    return jwt.decode(
        args.token,
        signing_key.key,
        algorithms=[args.alg],
        audience=args.audience,
        issuer=args.issuer,
        options={"require": required},
    )


def published_key(jwks_url: str, alg: str) -> dict:
    """The first JWK of `alg` that the server publishes."""
    with urllib.request.urlopen(jwks_url, timeout=30) as resp:
        keys = json.load(resp)["keys"]
    kty = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}[alg]
    for key in keys:
        if key.get("alg", alg) == alg and key.get("kty") == kty and key.get("kid"):
            return key
    raise LookupError(f"no {alg} key with a kid in {jwks_url}")


def forged_claims(args: argparse.Namespace) -> dict:
    now = int(time.time())
    return {
        "iss": args.issuer,
        "sub": args.subject,
        "aud": args.audience,
        "client_id": args.subject,
        "scope": "read",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def hs256_by_hand(headers: dict, claims: dict, secret: bytes) -> str:
    """A compact HS256 JWS built without a JOSE library."""
    header = {"alg": "HS256", **headers}
    signing_input = b64url(compact_json(header)) + "." + b64url(compact_json(claims))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def fresh_private_key(alg: str):
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def forge(args: argparse.Namespace) -> str:
    jwk = published_key(args.jwks_url, args.alg)
    headers = {"kid": jwk["kid"], "typ": ACCESS_TOKEN_TYP}
    claims = forged_claims(args)
    if args.forge == "none":
        return jwt.encode(claims, None, algorithm="none", headers=headers)
    if args.forge == "hs256-with-public-key":
        public_pem = (
            jwt.PyJWK(jwk, algorithm=args.alg)
            .key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        try:
            return jwt.encode(claims, public_pem, algorithm="HS256", headers=headers)
        except jwt.InvalidKeyError:
            # PyJWT refuses a PEM public key as an HMAC secret (its own RFC 8725 guard),
            # so the attacker signs by hand with the same bytes.
            return hs256_by_hand(headers, claims, public_pem)
    # wrong-key: the right kid and alg, a key the server never published.
    return jwt.encode(claims, fresh_private_key(args.alg), algorithm=args.alg, headers=headers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jwks-url", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--alg", required=True, choices=ALGS)
    parser.add_argument("--typ", default=ACCESS_TOKEN_TYP, choices=[ACCESS_TOKEN_TYP, PUBLISH_TOKEN_TYP])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--token", help="verify this token and print its claims")
    mode.add_argument("--forge", choices=FORGE_KINDS, help="print a forged token of this kind")
    parser.add_argument("--subject", default="tgc_forged", help="sub and client_id of forged tokens")
    args = parser.parse_args()
    try:
        if args.forge:
            print(forge(args))
        else:
            print(json.dumps(verify(args), sort_keys=True))
    except Exception as e:  # noqa: BLE001 - every failure is a refusal, reported as such
        print(f"pyjwt: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
