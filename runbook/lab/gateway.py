"""A gateway in front of stand-in routers, on loopback, for the lab and the tests.

* :class:`StandInRouter` -- a tiny HTTP server that answers every request with its name
  (body ``router=<name>`` and header ``X-Router: <name>``), standing in for a gorouter.
* :class:`NginxGateway` -- a real ``nginx`` from the Debian package, run from its own
  prefix directory with a main config that ``include``\\ s a separate upstream file.
* :class:`HAProxyGateway` -- a real ``haproxy`` in master-worker mode (``-W``) with a
  master CLI socket, loaded from a main config plus a separate backend file (``-f`` twice).

With ``tls=True`` a gateway terminates TLS, as the real one does, with a throwaway
self-signed certificate for 127.0.0.1 (made with ``cryptography``, from the lab extra).

Both gateways expose ``target()``: the ``gateway`` entry of a runbook target profile that
``gateway.switch`` understands, so the lab and the tests drive the step the way an
operator's runbook does. Each is a context manager; ``stop()`` ends the process and the
temporary directory is removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from runbook.lab.servers import (
    ServerUnavailable,
    find_binary,
    free_port,
    stop_process,
    wait_for_port,
)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A gateway closing an idle keep-alive connection during a reload is normal here.
        return


class StandInRouter:
    """Answers ``router=<name>`` to any GET on a free loopback port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> StandInRouter:
        router = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                router.hits += 1
                body = f"router={router.name}\n".encode()
                self.send_response(200)
                self.send_header("X-Router", router.name)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name=f"router-{self.name}").start()
        return self

    @property
    def address(self) -> str:
        assert self._server is not None, "start() the router first"
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandInRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


NGINX_MAIN = """\
# Lab gateway: plain HTTP on loopback; the upstream block lives in {upstream_file}.
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {upstream_file};
    server {{
        listen 127.0.0.1:{port}{ssl};
{tls_lines}        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""

NGINX_UPSTREAM = "upstream {name} {{\n{servers}}}\n"

HAPROXY_MAIN = """\
# Lab gateway: plain HTTP on loopback; the backend section lives in a second -f file.
global
    maxconn 256
    stats socket {dir}/admin.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch
frontend gateway
    bind 127.0.0.1:{port}{tls_bind}
    default_backend {upstream}
"""

HAPROXY_BACKEND = "backend {name}\n    balance roundrobin\n{servers}"


def _self_signed(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise ServerUnavailable("a TLS gateway needs 'cryptography' "
                                "(pip install 'paas-runbook[lab]')") from None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runbook lab gateway")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)


class _Gateway:
    binary_name = ""

    def __init__(self, routers: list[str], upstream: str = "cf_routers", *,
                 tls: bool = False) -> None:
        binary = find_binary(self.binary_name, ["/usr/sbin", "/usr/local/sbin"])
        if binary is None:
            raise ServerUnavailable(f"'{self.binary_name}' is not installed "
                                    f"(Debian package {self.binary_name})")
        self.binary = binary
        self.routers = list(routers)
        self.upstream = upstream
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"runbook-{self.binary_name}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls
        if tls:
            _self_signed(self.dir / "gateway.crt", self.dir / "gateway.key")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait(self) -> None:
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NginxGateway(_Gateway):
    """nginx with ``-p <dir> -c <dir>/nginx.conf``, in the foreground (``daemon off``)."""

    binary_name = "nginx"

    @property
    def config(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def upstream_file(self) -> Path:
        return self.dir / "upstream.conf"

    def start(self) -> NginxGateway:
        (self.dir / "tmp").mkdir()
        servers = "".join(f"    server {r};\n" for r in self.routers)
        self.upstream_file.write_text(NGINX_UPSTREAM.format(name=self.upstream,
                                                            servers=servers))
        tls_lines = (f"        ssl_certificate {self.dir}/gateway.crt;\n"
                     f"        ssl_certificate_key {self.dir}/gateway.key;\n") if self.tls else ""
        self.config.write_text(NGINX_MAIN.format(dir=self.dir, port=self.port,
                                                 upstream=self.upstream,
                                                 upstream_file=self.upstream_file,
                                                 ssl=" ssl" if self.tls else "",
                                                 tls_lines=tls_lines))
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
             "-c", str(self.config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        return self

    def target(self) -> dict[str, Any]:
        return {"kind": "nginx", "config": str(self.config), "prefix": str(self.dir),
                "upstream_file": str(self.upstream_file), "binary": self.binary,
                "upstream_name": self.upstream, "url": self.url}

    def __enter__(self) -> NginxGateway:
        return self.start()


class HAProxyGateway(_Gateway):
    """haproxy ``-W -S <master socket> -f main.cfg -f backend.cfg``, in the foreground.

    Master-worker mode lets a reload (``reload`` on the master CLI, or SIGUSR2) start a
    new worker that takes over the listening sockets before the old one finishes, which
    is what keeps a switch free of refused connections.
    """

    binary_name = "haproxy"

    @property
    def config(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def upstream_file(self) -> Path:
        return self.dir / "backend.cfg"

    @property
    def master_socket(self) -> Path:
        return self.dir / "master.sock"

    def start(self) -> HAProxyGateway:
        servers = "".join(f"    server router{i} {r}\n" for i, r in enumerate(self.routers, 1))
        self.upstream_file.write_text(HAPROXY_BACKEND.format(name=self.upstream,
                                                             servers=servers))
        tls_bind = ""
        if self.tls:
            pem = self.dir / "gateway.pem"  # HAProxy wants certificate and key in one file
            pem.write_text((self.dir / "gateway.crt").read_text()
                           + (self.dir / "gateway.key").read_text())
            tls_bind = f" ssl crt {pem}"
        self.config.write_text(HAPROXY_MAIN.format(dir=self.dir, port=self.port,
                                                   upstream=self.upstream, tls_bind=tls_bind))
        self.proc = subprocess.Popen(
            [self.binary, "-W", "-S", str(self.master_socket), "-p",
             str(self.dir / "haproxy.pid"), "-f", str(self.config),
             "-f", str(self.upstream_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        self._wait_master()
        return self

    def _wait_master(self) -> None:
        # The master CLI starts answering a moment after the worker binds the frontend.
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(self.master_socket))
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError("the HAProxy master CLI socket never answered") from None
                time.sleep(0.05)

    def target(self) -> dict[str, Any]:
        return {"kind": "haproxy", "config": str(self.config),
                "upstream_file": str(self.upstream_file), "binary": self.binary,
                "master_socket": str(self.master_socket), "upstream_name": self.upstream,
                "url": self.url}

    def stop(self) -> None:
        if self.proc is not None:
            # The master stops its workers on SIGUSR1 (soft stop) or SIGTERM.
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop()

    def __enter__(self) -> HAProxyGateway:
        return self.start()
