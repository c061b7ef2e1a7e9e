#!/usr/bin/python3
"""hello: rtctl's example service. HTTP on $PORT (or $HELLO_PORT) with /, /health and /version.

Settings: the environment (the unit's EnvironmentFile: HELLO_<NAME>), overridden by Consul KV when
$HELLO_CONSUL (e.g. http://127.0.0.1:8500) is set: the keys under `config/global/` and then `config/hello/` (what
platform.yaml's `config:` section writes), read with $HELLO_CONSUL_TOKEN if set, re-read at most every 5 s. When $HELLO_DATABASE (a libpq connection string) is set, / counts visits in PostgreSQL and
/health checks the database too (python3-psycopg2 from Debian). Standard library otherwise, so a host needs
nothing but Debian's python3.
"""
import base64
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0.0"
# Tests build a broken release by flipping this: its /health then never passes.
HEALTHY = True
PORT = int(os.environ.get("PORT") or os.environ.get("HELLO_PORT") or "8080")
BIND = os.environ.get("HELLO_BIND", "0.0.0.0")
CONSUL = os.environ.get("HELLO_CONSUL", "")
CONSUL_PREFIXES = os.environ.get("HELLO_CONSUL_PREFIXES", "config/global/,config/hello/").split(",")
CONSUL_TOKEN = os.environ.get("HELLO_CONSUL_TOKEN", "")
DATABASE = os.environ.get("HELLO_DATABASE", "")

_settings = {"at": 0.0, "values": {}}
_lock = threading.Lock()


def consul_get(prefix):
    """{key without prefix: value} under a KV prefix; {} when there is none."""
    req = urllib.request.Request("%s/v1/kv/%s?recurse" % (CONSUL.rstrip("/"), prefix))
    if CONSUL_TOKEN:
        req.add_header("X-Consul-Token", CONSUL_TOKEN)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            entries = json.loads(resp.read().decode() or "[]")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise
    return {
        e["Key"][len(prefix):]: base64.b64decode(e["Value"] or "").decode()
        for e in entries
        if e["Key"] != prefix
    }


def consul_settings():
    """Settings from Consul KV (service keys win over global ones), cached for 5 s; {} without Consul."""
    if not CONSUL:
        return {}
    with _lock:
        if time.time() - _settings["at"] < 5:
            return _settings["values"]
        values = _settings["values"]
        try:
            merged = {}
            for prefix in CONSUL_PREFIXES:
                merged.update(consul_get(prefix))
            values = merged
        except (OSError, ValueError, KeyError) as e:
            sys.stderr.write("consul: %s (keeping the last settings)\n" % e)
        _settings.update(at=time.time(), values=values)
        return values


def setting(name, default):
    return consul_settings().get(name, os.environ.get("HELLO_" + name.upper(), default))


def db():
    import psycopg2  # only when a database is configured

    return psycopg2.connect(DATABASE, connect_timeout=2)


def db_visit():
    with db() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS hello_visits (host text PRIMARY KEY, n bigint NOT NULL)")
        cur.execute(
            "INSERT INTO hello_visits VALUES (%s, 1) ON CONFLICT (host) DO UPDATE SET n = hello_visits.n + 1 RETURNING n",
            (os.uname().nodename,),
        )
        return cur.fetchone()[0]


class Handler(BaseHTTPRequestHandler):
    server_version = "hello/" + VERSION
    protocol_version = "HTTP/1.1"

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (e.g. a load balancer's health check) did not wait for the body

    def do_GET(self):
        if self.path == "/health":
            if not HEALTHY:
                return self._send(503, {"status": "broken build"})
            if DATABASE:
                try:
                    db().close()
                except Exception as e:  # noqa: BLE001 - any database error makes the instance unhealthy
                    return self._send(503, {"status": "database unreachable", "error": str(e).strip()})
            return self._send(200, {"status": "ok"})
        if self.path == "/version":
            return self._send(200, {"version": VERSION})
        body = {"greeting": setting("greeting", "hello"), "version": VERSION, "host": os.uname().nodename, "port": PORT}
        if DATABASE:
            try:
                body["visits"] = db_visit()
            except Exception as e:  # noqa: BLE001
                return self._send(503, {"error": "database: %s" % str(e).strip()})
        self._send(200, body)

    def log_message(self, fmt, *args):
        pass  # one line per request would flood the journal under load


def main():
    server = ThreadingHTTPServer((BIND, PORT), Handler)
    server.daemon_threads = True
    # SIGTERM: stop accepting, let requests in progress finish (rtctl drains the instance before stopping it).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("hello %s listening on %s:%d" % (VERSION, BIND, PORT), flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
