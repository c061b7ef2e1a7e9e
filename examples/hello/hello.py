#!/usr/bin/python3
"""hello: rtctl's example service. HTTP on $HELLO_PORT with /, /health and /version.

Settings come from the environment (the unit's EnvironmentFile). Standard library only, so a host needs
nothing but Debian's python3.
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0.0"
PORT = int(os.environ.get("HELLO_PORT", "8080"))
BIND = os.environ.get("HELLO_BIND", "0.0.0.0")


def greeting():
    return os.environ.get("HELLO_GREETING", "hello")


class Handler(BaseHTTPRequestHandler):
    server_version = "hello/" + VERSION

    def _send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, json.dumps({"status": "ok"}))
        elif self.path == "/version":
            self._send(200, json.dumps({"version": VERSION}))
        else:
            self._send(200, json.dumps({"greeting": greeting(), "version": VERSION, "host": os.uname().nodename}))

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("hello %s listening on %s:%d" % (VERSION, BIND, PORT), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
