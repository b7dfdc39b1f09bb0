"""A stand-in for nginx when neither nginx nor HAProxy is installed (not an nginx).

The lab's gateway must be switchable by ``gateway.switch`` exactly as a real nginx is:
the step renders an ``upstream`` file, asks ``nginx -t -c`` whether the main config with
the new file is valid, swaps the file in and runs ``nginx -s reload``. This module gives
it a small HTTP proxy in the lab process that reads the same two files, plus a
command-line ``binary`` understanding those two calls:

* ``-t [-q] -c CONF [-p PREFIX]`` -- parse every file CONF includes as ``upstream NAME {
  server HOST:PORT [options]; ... }``; on a problem print ``nginx: [emerg] ...`` and exit 1;
* ``-s reload -c CONF`` -- tell the proxy to re-read its upstream (until then it keeps
  the routers it had, as nginx does).

Only plain HTTP GET is proxied, round-robin over the servers; enough for probes.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

RELOAD_PATH = "/__lab_gateway/reload"
_INCLUDE = re.compile(r"^\s*include\s+([^;]+);", re.MULTILINE)
_UPSTREAM = re.compile(r"upstream\s+(\S+)\s*\{([^{}]*)\}")
_SERVER = re.compile(r"^server\s+(\S+?)(?:\s+[^;]*)?$")
MAIN = "# Lab gateway (stand-in for nginx); the upstream block is in {upstream_file}\n" \
       "include {upstream_file};\nlisten 127.0.0.1:{port};\n"


class ConfigError(ValueError):
    pass


def read_upstreams(config: Path) -> dict[str, list[str]]:
    """Upstream name -> server addresses from every file ``config`` includes."""
    upstreams: dict[str, list[str]] = {}
    for match in _INCLUDE.finditer(config.read_text()):
        path = Path(match.group(1).strip().strip("\"'"))
        if not path.is_absolute():
            path = config.parent / path
        try:
            text = re.sub(r"#[^\n]*", "", path.read_text())
        except OSError as exc:
            raise ConfigError(f'open() "{path}" failed ({exc.strerror})') from None
        if text.count("{") != text.count("}"):
            raise ConfigError(f'unexpected end of file, expecting "}}" in {path}')
        for name, body in _UPSTREAM.findall(text):
            servers = []
            for statement in filter(None, (s.strip() for s in body.split(";"))):
                found = _SERVER.match(statement)
                if found is None or not re.fullmatch(r"[\w.\-\[\]:]+:\d+", found.group(1)):
                    raise ConfigError(f'invalid parameter "{statement}" in {path}')
                servers.append(found.group(1))
            if not servers:
                raise ConfigError(f'no servers are inside upstream "{name}" in {path}')
            upstreams[name] = servers
    return upstreams


class SubstituteGateway:
    """The proxy, with ``target()`` like :class:`runbook.lab.gateway.NginxGateway`."""

    binary_name = "nginx stand-in"

    def __init__(self, routers: list[str], upstream: str = "cf_routers") -> None:
        self.routers, self.upstream = list(routers), upstream
        self.dir = Path(tempfile.mkdtemp(prefix="runbook-gw-"))
        self.config = self.dir / "nginx.conf"
        self.upstream_file = self.dir / "upstream.conf"
        self.binary = self.dir / "nginx"
        self._cycle: Any = itertools.cycle(self.routers)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.proc = None  # no process of its own: it lives in the lab's

    def reload(self) -> None:
        servers = read_upstreams(self.config)[self.upstream]
        with self._lock:
            self.routers, self._cycle = servers, itertools.cycle(servers)

    def next_router(self) -> str:
        with self._lock:
            return str(next(self._cycle))

    def __enter__(self) -> Self:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == RELOAD_PATH:
                    try:
                        gateway.reload()
                        self._reply(200, b"reloaded\n", {})
                    except (ConfigError, KeyError, OSError) as exc:
                        self._reply(500, f"{exc}\n".encode(), {})
                    return
                host, _, port = gateway.next_router().rpartition(":")
                try:
                    conn = http.client.HTTPConnection(host, int(port), timeout=5)
                    conn.request("GET", self.path, headers={"Host": self.headers.get("Host",
                                                                                     "")})
                    answer = conn.getresponse()
                    body = answer.read()
                    headers = {k: v for k, v in answer.getheaders()
                               if k.lower() not in ("content-length", "connection")}
                    self._reply(answer.status, body, headers)
                except OSError:
                    self._reply(502, b"bad gateway\n", {})

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        servers = "".join(f"    server {r};\n" for r in self.routers)
        self.upstream_file.write_text(f"upstream {self.upstream} {{\n{servers}}}\n")
        self.config.write_text(MAIN.format(upstream_file=self.upstream_file, port=self.port))
        self.binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runbook.lab.gateway_sub '
                               f'"$@"\n')
        self.binary.chmod(0o755)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="lab-gateway").start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def target(self) -> dict[str, Any]:
        return {"kind": "nginx", "config": str(self.config), "prefix": str(self.dir),
                "upstream_file": str(self.upstream_file), "binary": str(self.binary),
                "upstream_name": self.upstream, "url": self.url}

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    """The ``binary``: ``-t`` checks a config, ``-s reload`` reloads the running proxy."""
    config = Path(argv[argv.index("-c") + 1]) if "-c" in argv else None
    if config is None:
        print("nginx: [emerg] the lab's stand-in needs -c CONF", file=sys.stderr)
        return 1
    try:
        upstreams = read_upstreams(config)
    except ConfigError as exc:
        print(f"nginx: [emerg] {exc}", file=sys.stderr)
        return 1
    if "-t" in argv:
        if "-q" not in argv:
            print(f"nginx: configuration file {config} test is successful", file=sys.stderr)
        return 0
    if "-s" in argv and argv[argv.index("-s") + 1] == "reload":
        port = re.search(r"listen 127\.0\.0\.1:(\d+);", config.read_text())
        if port is None or not upstreams:
            print("nginx: [emerg] no running gateway for this config", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}{RELOAD_PATH}",
                                        timeout=10) as reply:
                reply.read()
        except OSError as exc:
            print(f"nginx: [error] reload failed: {exc}", file=sys.stderr)
            return 1
        return 0
    print("nginx: [emerg] the lab's stand-in understands only -t and -s reload",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
