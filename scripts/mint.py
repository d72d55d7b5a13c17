#!/usr/bin/env python3
"""Mints test JWTs for the load script. Prints one token per line.

    mint.py HS256 SECRET COUNT [SUBJECT_PREFIX]
    mint.py RS256 KEYFILE COUNT [SUBJECT_PREFIX]
    mint.py ES256 KEYFILE COUNT [SUBJECT_PREFIX]

RS256/ES256 sign with the `cryptography` package when it is installed (fast
enough for tens of thousands of tokens), else with the openssl command
(RS256 only). Every token has its own subject and jti.
"""
import base64, hashlib, hmac, json, subprocess, sys, time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signer(alg: str, key: str):
    if alg == "HS256":
        return lambda data: hmac.new(key.encode(), data, hashlib.sha256).digest()
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        if alg != "RS256":
            sys.exit(f"{alg} needs the Python package cryptography")
        return lambda data: subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", key],
            input=data, capture_output=True, check=True).stdout
    with open(key, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    if alg == "RS256":
        return lambda data: private.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def es256(data: bytes) -> bytes:  # JOSE wants r || s, 32 bytes each
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return es256


def main() -> None:
    alg, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "user"
    sign = signer(alg, key)
    now = int(time.time())
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    for n in range(count):
        claims = {"sub": f"{prefix}-{n}", "jti": f"load-{prefix}-{n}-{now}", "iat": now, "exp": now + 3600}
        payload = b64(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        print(f"{header}.{payload}.{b64(sign(signing_input))}")


if __name__ == "__main__":
    main()
