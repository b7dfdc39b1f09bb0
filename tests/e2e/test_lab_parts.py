"""The lab's own stand-ins, checked on their own: the nginx stand-in's ``-t``/reload and
the DNS responder over the PowerDNS tables."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from runbook.lab import gateway_sub
from runbook.lab.foundation import DbResponder
from runbook.lab.gateway import StandInRouter
from runbook.lab.servers import Postgres


def _conf(tmp_path: Path, upstream: str) -> Path:
    (tmp_path / "up.conf").write_text(upstream)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"include {tmp_path / 'up.conf'};\nlisten 127.0.0.1:1;\n")
    return conf


def test_check_accepts_an_upstream_and_names_the_problem_otherwise(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _conf(tmp_path, "# comment\nupstream cf {\n  server 10.0.0.1:80 max_fails=2;\n}\n")
    assert gateway_sub.read_upstreams(good) == {"cf": ["10.0.0.1:80"]}
    assert gateway_sub.main(["-t", "-q", "-c", str(good)]) == 0

    bad = _conf(tmp_path, "upstream cf {\n  server nowhere;\n}\n")
    assert gateway_sub.main(["-t", "-q", "-c", str(bad)]) == 1
    assert 'nginx: [emerg] invalid parameter "server nowhere"' in capsys.readouterr().err

    unclosed = _conf(tmp_path, "upstream cf {\n  server 10.0.0.1:80;\n")
    assert gateway_sub.main(["-t", "-c", str(unclosed)]) == 1
    assert "unexpected end of file" in capsys.readouterr().err


def test_stand_in_switches_only_on_reload() -> None:
    with StandInRouter("old") as old, StandInRouter("new") as new, \
            gateway_sub.SubstituteGateway([old.address]) as gw:
        def answer() -> str:
            with urllib.request.urlopen(gw.url, timeout=5) as reply:
                return str(reply.read().decode())

        assert answer() == "router=old\n"
        gw.upstream_file.write_text(f"upstream cf_routers {{\n    server {new.address};\n}}\n")
        assert answer() == "router=old\n"  # like nginx: nothing changes before a reload
        assert gateway_sub.main(["-s", "reload", "-c", str(gw.config)]) == 0
        assert answer() == "router=new\n"


def test_responder_answers_from_the_powerdns_tables(postgres_server: Postgres) -> None:
    import dns.message
    import dns.query
    import dns.rcode

    from runbook.lab.powerdns import create_schema, seed_domain

    dsn = postgres_server.create_database("lab_responder")
    create_schema(dsn)
    seed_domain(dsn, "example.test", ns_address="10.0.0.2", addresses={"api": "10.0.0.5"},
                wildcard="10.0.0.9")
    with DbResponder(dsn) as server:
        def ask(name: str, rtype: str = "A") -> tuple[int, list[str]]:
            reply = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1",
                                  port=server.port, timeout=2)
            return reply.rcode(), sorted(str(rd) for rrset in reply.answer for rd in rrset)

        assert ask("api.example.test") == (dns.rcode.NOERROR, ["10.0.0.5"])
        assert ask("any-app.example.test") == (dns.rcode.NOERROR, ["10.0.0.9"])
        assert ask("api.elsewhere.test")[0] == dns.rcode.REFUSED
        assert ask("example.test", "SOA")[1][0].startswith("localhost. hostmaster.localhost. 0 ")
