#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small HTTP(S) server for dm2's download tests, misbehaving on request.

    http-server.py --dir DIR --port-file FILE --log FILE [--cert PEM --key PEM]

Listens on 127.0.0.1 on a free port (written to --port-file once listening) and serves files
from DIR. The first path component picks the behaviour, the rest names the file:

    /files/NAME      honest: 200, or 206 for a "Range: bytes=N-" request
    /norange/NAME    ignores Range, always 200 with the whole file
    /badrange/NAME   answers a range request with 206 and a Content-Range starting at 0
    /nolength/NAME   no Content-Length, the body ends when the connection closes
    /flaky/NAME      500 on the first request for NAME, then like /files/
    /truncated/NAME  Content-Length 100 bytes larger than the body, then closes
    /stall/NAME      sends half the body, then nothing for 60 s
    /redirect/NAME   302 to /files/NAME
    /redirect-ftp/X  302 to ftp://127.0.0.1/X
    /status/CODE     answers with that status code

Every request is appended to --log as "PATH RANGE STATUS".
"""
import argparse
import http.server
import os
import re
import ssl
import threading
import time

LOCK = threading.Lock()
SEEN = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dm2-test"

    def log_message(self, fmt, *args):
        pass

    def record(self, status):
        with LOCK, open(self.server.log, "a") as f:
            f.write(f"{self.path} {self.headers.get('Range', '-')} {status}\n")

    def plain(self, code, text=b"", headers=()):
        self.record(code)
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_GET(self):
        parts = self.path.lstrip("/").split("/", 1)
        mode, name = parts[0], parts[1] if len(parts) > 1 else ""
        if mode == "status":
            return self.plain(int(name), b"status\n")
        if mode == "redirect":
            return self.plain(302, headers=[("Location", "/files/" + name)])
        if mode == "redirect-ftp":
            return self.plain(302, headers=[("Location", "ftp://127.0.0.1/" + name)])
        path = os.path.join(self.server.dir, os.path.basename(name))
        if not os.path.isfile(path):
            return self.plain(404, b"not found\n")
        with open(path, "rb") as f:
            data = f.read()
        if mode == "flaky":
            with LOCK:
                SEEN[name] = SEEN.get(name, 0) + 1
                first = SEEN[name] == 1
            if first:
                return self.plain(500, b"try again\n")
            mode = "files"
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m and mode in ("files", "badrange"):
            start = int(m.group(1)) if mode == "files" else 0
            if start >= len(data):
                return self.plain(416, headers=[("Content-Range", f"bytes */{len(data)}")])
            body = data[start:]
            self.record(206)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode not in ("files", "norange", "badrange", "nolength", "truncated", "stall"):
            return self.plain(404, b"no such mode\n")
        self.record(200)
        self.send_response(200)
        if mode == "nolength":
            self.send_header("Connection", "close")
            self.close_connection = True
        elif mode == "truncated":
            self.send_header("Content-Length", str(len(data) + 100))
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "stall":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(60)
            self.close_connection = True
            return
        self.wfile.write(data)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up early (size caps, stalls) are part of the tests


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.dir = a.dir
    httpd.log = a.log
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(httpd.server_address[1]))
    os.rename(tmp, a.port_file)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
