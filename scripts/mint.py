#!/usr/bin/env python3
"""Mints test JWTs for the load script: HS256 with a secret, RS256 with a PEM
key (signed by the openssl command). Prints one token per line.

    mint.py HS256 SECRET COUNT [SUBJECT_PREFIX]
    mint.py RS256 KEYFILE COUNT [SUBJECT_PREFIX]
"""
import base64, hashlib, hmac, json, subprocess, sys, time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    alg, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "user"
    now = int(time.time())
    for n in range(count):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        claims = {"sub": f"{prefix}-{n}", "jti": f"load-{n}-{now}", "iat": now, "exp": now + 3600}
        payload = b64(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        if alg == "HS256":
            sig = hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
        else:
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                                 input=signing_input, capture_output=True, check=True).stdout
        print(f"{header}.{payload}.{b64(sig)}")


if __name__ == "__main__":
    main()
