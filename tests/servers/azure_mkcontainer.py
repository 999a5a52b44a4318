#!/usr/bin/env python3
"""Create a blob container on Azurite with a SharedKey-signed request.

Usage: azure_mkcontainer.py ACCOUNT_URL CONTAINER [ACCOUNT KEY]
  ACCOUNT_URL  e.g. http://127.0.0.1:10000/devstoreaccount1 (path-style, as Azurite serves)
Prints "created" or "exists" (HTTP 409); exits 1 on any other answer.
Python standard library only; used by tests/servers/mod.rs (object_store
cannot create containers).
"""
import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.parse
import urllib.request
from email.utils import formatdate

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"


def main():
    if len(sys.argv) not in (3, 5):
        print(__doc__, file=sys.stderr)
        return 2
    base, container = sys.argv[1].rstrip("/"), sys.argv[2]
    account, key = (sys.argv[3], sys.argv[4]) if len(sys.argv) == 5 else (DEV_ACCOUNT, DEV_KEY)
    url = f"{base}/{container}?restype=container"
    path = urllib.parse.urlparse(url).path
    date = formatdate(usegmt=True)
    headers = {"x-ms-date": date, "x-ms-version": VERSION}
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    # VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date,
    # If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range
    string_to_sign = ("PUT\n" + "\n" * 11 + canonical_headers
                      + f"/{account}{path}\nrestype:container")
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    headers["Authorization"] = f"SharedKey {account}:{signature}"
    headers["Content-Length"] = "0"
    # No body (data=None): urllib would add a Content-Type that is not signed.
    req = urllib.request.Request(url, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print("created" if resp.status == 201 else f"status {resp.status}")
            return 0 if resp.status == 201 else 1
    except urllib.error.HTTPError as e:
        if e.code == 409:
            print("exists")
            return 0
        print(f"HTTP {e.code}: {e.read().decode(errors='replace')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
