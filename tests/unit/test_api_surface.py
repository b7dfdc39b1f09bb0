"""The step-author surface is exactly what runbook.api exports, and it is all importable."""

from __future__ import annotations

import subprocess
import sys

import runbook.api as api


def test_all_names_exist_and_nothing_else_public_is_exported() -> None:
    assert sorted(api.__all__) == api.__all__
    for name in api.__all__:
        assert hasattr(api, name), name
    public = {n for n in dir(api) if not n.startswith("_")}
    assert public == set(api.__all__)


def test_secret_never_prints_its_value() -> None:
    s = api.Secret("hunter2-long", "${env:X}")
    assert str(s) == "***" and "hunter2" not in repr(s) and f"{s}" == "***"
    assert s.reveal() == "hunter2-long"


def test_validate_does_not_import_integration_libraries(tmp_path: object) -> None:
    code = ("import sys; from runbook.cli.main import main; "
            "rc = main(['validate', 'tests/corpus/broken/06_unknown_step_type.yml']); "
            "heavy = [m for m in ('openstack', 'psycopg', 'nats', 'dns.resolver', "
            "'cryptography') if m in sys.modules]; print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
