#!/usr/bin/env python3
"""A translating proxy in front of fake-gcs-server, for tests only.

object_store talks to GCS through the XML API. fake-gcs-server answers XML
GET/HEAD/range/list/DELETE but not XML writes (single PUT, multipart
upload), so this proxy turns those into the emulator's JSON upload API and
forwards everything else unchanged:

  PUT /BUCKET/OBJECT                      -> POST /upload/storage/v1/b/BUCKET/o?uploadType=multipart
  POST /BUCKET/OBJECT?uploads             -> start an upload kept here (parts in a temp dir)
  PUT /BUCKET/OBJECT?partNumber=N&uploadId=U -> store the part, answer its ETag
  POST /BUCKET/OBJECT?uploadId=U          -> concatenate the listed parts, upload as above
  DELETE /BUCKET/OBJECT?uploadId=U        -> drop the upload

x-goog-meta-* headers become object metadata, x-goog-storage-class the
storage class, x-goog-if-generation-match the ifGenerationMatch parameter.

Usage: gcs_xml_proxy.py LISTEN_PORT UPSTREAM_PORT   (both on 127.0.0.1)
Python standard library only.
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = ("127.0.0.1", 0)
UPLOADS = {}  # upload id -> {"bucket", "name", "headers", "dir"}
LOCK = threading.Lock()
SPOOL = os.environ.get("GCS_PROXY_SPOOL") or tempfile.mkdtemp(prefix="gcs-proxy-")
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
       "trailers", "transfer-encoding", "upgrade", "host", "content-length"}


def upstream():
    return http.client.HTTPConnection(*UPSTREAM, timeout=120)


def split_path(path):
    """'/bucket/some/obj' -> ('bucket', 'some/obj') with percent-decoding."""
    parts = path.lstrip("/").split("/", 1)
    bucket = urllib.parse.unquote(parts[0])
    name = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
    return bucket, name


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless asked
        if os.environ.get("GCS_PROXY_LOG"):
            sys.stderr.write("proxy: " + (fmt % args) + "\n")

    # ---------------------------------------------------------- helpers
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def xml_error(self, status, code, message):
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>").encode()
        self.reply(status, body, {"Content-Type": "application/xml"})

    def object_resource(self, headers):
        meta = {k[len("x-goog-meta-"):]: v for k, v in headers.items()
                if k.lower().startswith("x-goog-meta-")}
        res = {}
        if meta:
            res["metadata"] = meta
        if headers.get("Content-Type"):
            res["contentType"] = headers["Content-Type"]
        if headers.get("x-goog-storage-class"):
            res["storageClass"] = headers["x-goog-storage-class"]
        return res

    def json_upload(self, bucket, name, headers, data_path=None, data=b""):
        """Uploads through the JSON API; returns (status, json or text)."""
        resource = dict(self.object_resource(headers), name=name)
        boundary = "tierfs-" + uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                f"{json.dumps(resource)}\r\n--{boundary}\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = os.path.getsize(data_path) if data_path else len(data)
        query = {"uploadType": "multipart"}
        gen = headers.get("x-goog-if-generation-match")
        if gen is not None:
            query["ifGenerationMatch"] = gen
        url = (f"/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o?"
               + urllib.parse.urlencode(query))
        conn = upstream()
        conn.putrequest("POST", url)
        conn.putheader("Content-Type", f"multipart/related; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        conn.send(head)
        if data_path:
            with open(data_path, "rb") as f:
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    conn.send(chunk)
        else:
            conn.send(data)
        conn.send(tail)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text.decode(errors="replace")

    def put_result(self, status, obj, xml_body=None):
        if status >= 300:
            code = "PreconditionFailed" if status == 412 else "UpstreamError"
            return self.xml_error(status, code, str(obj)[:300])
        etag = '"' + (obj.get("md5Hash") or obj.get("etag") or uuid.uuid4().hex) + '"'
        headers = {"ETag": etag, "x-goog-generation": str(obj.get("generation", "1"))}
        if xml_body is not None:
            body = xml_body.replace("{ETAG}", etag).encode()
            headers["Content-Type"] = "application/xml"
            return self.reply(200, body, headers)
        return self.reply(200, b"", headers)

    # ---------------------------------------------------------- XML writes
    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        bucket, name = split_path(url.path)
        if "uploadId" in q and "partNumber" in q:
            up = UPLOADS.get(q["uploadId"][0])
            if up is None:
                self.body()
                return self.xml_error(404, "NoSuchUpload", "unknown upload")
            data = self.body()
            part = int(q["partNumber"][0])
            with open(os.path.join(up["dir"], f"{part:05d}"), "wb") as f:
                f.write(data)
            return self.reply(200, b"", {"ETag": '"' + hashlib.md5(data).hexdigest() + '"'})
        if self.headers.get("x-goog-copy-source"):
            self.body()
            return self.xml_error(501, "NotImplemented", "copy is not translated by this proxy")
        data = self.body()
        status, obj = self.json_upload(bucket, name, self.headers, data=data)
        return self.put_result(status, obj)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        bucket, name = split_path(url.path)
        if "uploads" in q:
            self.body()
            upload_id = uuid.uuid4().hex
            d = os.path.join(SPOOL, upload_id)
            os.makedirs(d)
            with LOCK:
                UPLOADS[upload_id] = {"bucket": bucket, "name": name,
                                      "headers": dict(self.headers.items()), "dir": d}
            body = ("<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
                    f"<Bucket>{bucket}</Bucket><Key>{name}</Key><UploadId>{upload_id}</UploadId>"
                    "</InitiateMultipartUploadResult>").encode()
            return self.reply(200, body, {"Content-Type": "application/xml"})
        if "uploadId" in q:
            upload_id = q["uploadId"][0]
            xml = self.body().decode()
            with LOCK:
                up = UPLOADS.pop(upload_id, None)
            if up is None:
                return self.xml_error(404, "NoSuchUpload", "unknown upload")
            numbers = [int(n) for n in re.findall(r"<PartNumber>(\d+)</PartNumber>", xml)]
            joined = os.path.join(up["dir"], "joined")
            try:
                with open(joined, "wb") as out:
                    for n in numbers:
                        with open(os.path.join(up["dir"], f"{n:05d}"), "rb") as f:
                            shutil.copyfileobj(f, out, 1 << 20)
                status, obj = self.json_upload(up["bucket"], up["name"], up["headers"],
                                               data_path=joined)
            except FileNotFoundError:
                return self.xml_error(400, "InvalidPart", "a listed part was never uploaded")
            finally:
                shutil.rmtree(up["dir"], ignore_errors=True)
            xml_body = ("<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
                        f"<Bucket>{bucket}</Bucket><Key>{name}</Key><ETag>{{ETAG}}</ETag>"
                        "</CompleteMultipartUploadResult>")
            return self.put_result(status, obj, xml_body)
        return self.forward()

    def do_DELETE(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if "uploadId" in q:
            self.body()
            with LOCK:
                up = UPLOADS.pop(q["uploadId"][0], None)
            if up:
                shutil.rmtree(up["dir"], ignore_errors=True)
            return self.reply(204)
        return self.forward()

    def do_GET(self):
        return self.forward()

    def do_HEAD(self):
        return self.forward()

    # ---------------------------------------------------------- the rest
    def forward(self):
        data = self.body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn = upstream()
        try:
            conn.request(self.command, self.path, body=data or None, headers=headers)
            resp = conn.getresponse()
        except OSError as e:
            return self.xml_error(502, "BadGateway", str(e))
        self.send_response(resp.status)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if self.command == "HEAD" or resp.status in (204, 304):
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            resp.read()
        elif length is not None:
            self.send_header("Content-Length", length)
            self.end_headers()
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)
        else:
            body = resp.read()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        conn.close()


def main():
    global UPSTREAM
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    UPSTREAM = ("127.0.0.1", int(sys.argv[2]))
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        shutil.rmtree(SPOOL, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
