#!/usr/bin/env python3
"""Mints test JWTs for the load script. Prints one token per line.

    mint.py ALG KEY COUNT [SUBJECT_PREFIX]

ALG is HS256 (KEY is the secret), RS256, ES256 or EdDSA (KEY is a PEM
private key file). RS256/ES256/EdDSA sign with the `cryptography` package
when it is installed, else with the openssl command (RS256 only, slow).
Every token has its own subject and jti; large counts are minted on every
core. Tokens expire in a day.
"""
import base64, hashlib, hmac, json, os, subprocess, sys, time
from multiprocessing import Pool


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
    if alg == "EdDSA":
        return private.sign

    def es256(data: bytes) -> bytes:  # JOSE wants r || s, 32 bytes each
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return es256


def mint(job) -> list:
    alg, key, prefix, now, start, end = job
    sign = signer(alg, key)
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    out = []
    for n in range(start, end):
        claims = {"sub": f"{prefix}-{n}", "jti": f"load-{prefix}-{n}-{now}", "iat": now,
                  "exp": now + 86400}
        payload = b64(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        out.append(f"{header}.{payload}.{b64(sign(signing_input))}")
    return out


def main() -> None:
    alg, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "user"
    now = int(time.time())
    step = 20000
    jobs = [(alg, key, prefix, now, s, min(s + step, count)) for s in range(0, count, step)]
    if len(jobs) <= 1:
        results = map(mint, jobs)
    else:
        results = Pool(os.cpu_count() or 1).imap(mint, jobs)
    for tokens in results:
        sys.stdout.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
