#!/usr/bin/env python3
"""Write a VOLTTRON keystore ({"public","secret"} in 43-char URL-safe base64) from the Z85
secret key compare.sh hands the router under test (VIP_SECRETKEY). Pure Python: no pyzmq."""
import base64
import json
import sys

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85_decode(text):
    out = bytearray()
    for i in range(0, len(text), 5):
        v = 0
        for c in text[i:i + 5]:
            v = v * 85 + ALPHABET.index(c)
        out += v.to_bytes(4, "big")
    return bytes(out)


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


secret_z85, public_z85, path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    json.dump({"public": b64(z85_decode(public_z85)), "secret": b64(z85_decode(secret_z85))}, f)
