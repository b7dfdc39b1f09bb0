"""The compiled multi-buffer key derivation (steps/ccdb/_kdf.c), byte for byte against
hashlib and the pure-Python ``crypto.evp_bytes_to_key``, for every instruction set this CPU
can run (not only the one chosen at import), with batch sizes that leave lane groups
partly filled."""

from __future__ import annotations

import functools
import hashlib
import random
import threading
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from steps.ccdb import crypto
from tests.conftest import missing

try:
    from steps.ccdb import _kdf as _compiled
except ImportError as exc:  # no C compiler when the package was installed
    _compiled = None
    _IMPORT_ERROR = str(exc)
    ISAS: tuple[str, ...] = ("unavailable",)
else:
    ISAS = _compiled._ISAS

_rnd = random.Random(20240611)
PASSWORDS = [_rnd.randbytes(n) for n in (0, 1, 7, 8, 55, 56, 63, 64, 65, 119, 120, 200, 2000)]
PASSWORDS += ["key-two ✓".encode(), "ünïcødé データ 🔑 ".encode() * 5]
SALT_COUNTS = (0, 1, 15, 16, 17, 33, 100)
EVP_SALTS = [_rnd.randbytes(8) for _ in range(max(SALT_COUNTS) - 1)] + [b"3f2a9c1e"]
PBKDF2_SALT_LENGTHS = (0, 1, 16, 55, 56, 64, 100)
PBKDF2_SALTS = [_rnd.randbytes(PBKDF2_SALT_LENGTHS[i % len(PBKDF2_SALT_LENGTHS)])
                for i in range(max(SALT_COUNTS))]


def _password_id(password: bytes) -> str:
    return f"pw{len(password)}"


@pytest.fixture(scope="module")
def kdf() -> ModuleType:
    if _compiled is None:
        missing(f"compiled steps.ccdb._kdf ({_IMPORT_ERROR}); "
                "`pip install -e .` builds it when a C compiler is present")
    return _compiled


@functools.cache
def _evp_reference(password: bytes, rounds: int) -> bytes:
    return b"".join(key + iv for key, iv in
                    (crypto.evp_bytes_to_key(password, salt, rounds) for salt in EVP_SALTS))


@functools.cache
def _pbkdf2_reference(password: bytes, iterations: int) -> list[bytes]:
    return [hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
            for salt in PBKDF2_SALTS]


def test_module_reports_the_chosen_kernel(kdf: ModuleType) -> None:
    assert kdf.ISA == kdf._ISAS[0]
    assert kdf._ISAS[-1] == "generic"
    assert isinstance(kdf.LANES, int) and kdf.LANES >= 1
    salts = EVP_SALTS[:20]
    assert kdf.evp_md5(b"pw", salts, 3) == kdf.evp_md5(b"pw", salts, 3, isa=kdf.ISA)


@pytest.mark.parametrize("password", PASSWORDS, ids=_password_id)
@pytest.mark.parametrize("isa", ISAS)
def test_evp_md5_matches_pure_python(kdf: ModuleType, isa: str, password: bytes) -> None:
    for rounds in (1, 2, 3, 2048):
        expected = _evp_reference(password, rounds)
        for count in SALT_COUNTS:
            got = kdf.evp_md5(password, EVP_SALTS[:count], rounds, isa=isa)
            assert got == expected[:32 * count], (rounds, count)


@pytest.mark.parametrize("password", PASSWORDS, ids=_password_id)
@pytest.mark.parametrize("isa", ISAS)
def test_pbkdf2_sha256_matches_hashlib(kdf: ModuleType, isa: str, password: bytes) -> None:
    for iterations in (1, 2, 2048):
        expected = _pbkdf2_reference(password, iterations)
        for length in (16, 32):
            for count in SALT_COUNTS:
                got = kdf.pbkdf2_sha256(password, PBKDF2_SALTS[:count], iterations, length,
                                        isa=isa)
                assert got == b"".join(key[:length] for key in expected[:count]), \
                    (iterations, length, count)


@pytest.mark.parametrize("isa", ISAS)
def test_pbkdf2_every_length_and_the_default(kdf: ModuleType, isa: str) -> None:
    salts = PBKDF2_SALTS[:9]
    for length in range(1, 33):
        expected = b"".join(hashlib.pbkdf2_hmac("sha256", b"k" * 70, s, 5, length) for s in salts)
        assert kdf.pbkdf2_sha256(b"k" * 70, salts, 5, length, isa=isa) == expected
    assert kdf.pbkdf2_sha256(b"k", salts, 5, isa=isa) == kdf.pbkdf2_sha256(b"k", salts, 5, 16)


def test_what_cloud_controller_rows_use(kdf: ModuleType) -> None:
    """The two branches of crypto.derive(): 8-character salts and 16-character salts."""
    for password, salt, iterations in [("cc-db-key", "3f2a9c1e", 2048), ("", "a1b2c3d4", 2048),
                                       ("key-two ✓", "3f2a9c1e0b7d4a61", 2048),
                                       ("key-one", "0011223344556677", 100000)]:
        key, iv = crypto.derive(password, salt, iterations)
        if crypto.is_legacy_salt(salt):
            assert kdf.evp_md5(password.encode(), [salt.encode()], 2048) == key + iv
        else:
            assert kdf.pbkdf2_sha256(password.encode(), [salt.encode()], iterations) == key


def test_any_sequence_of_bytes_like_salts(kdf: ModuleType) -> None:
    salts = EVP_SALTS[:5]
    expected = kdf.evp_md5(b"pw", salts, 2)
    assert kdf.evp_md5(b"pw", tuple(salts), 2) == expected
    assert kdf.evp_md5(bytearray(b"pw"), [bytearray(s) for s in salts], 2) == expected
    assert kdf.evp_md5(memoryview(b"pw"), [memoryview(s) for s in salts], 2) == expected
    assert kdf.pbkdf2_sha256(b"pw", (b"salt", bytearray(b"salt2")), 3) == (
        hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 3, 16)
        + hashlib.pbkdf2_hmac("sha256", b"pw", b"salt2", 3, 16))
    assert kdf.evp_md5(b"pw", [], 2048) == b""
    assert kdf.pbkdf2_sha256(b"pw", (), 2048) == b""


BAD_INPUT = {
    "evp-salt-7-bytes": (lambda k: k.evp_md5(b"pw", [b"1234567"], 2048), ValueError),
    "evp-salt-9-bytes": (lambda k: k.evp_md5(b"pw", [b"12345678", b"123456789"], 2048),
                         ValueError),
    "evp-salt-empty": (lambda k: k.evp_md5(b"pw", [b""], 2048), ValueError),
    "evp-rounds-0": (lambda k: k.evp_md5(b"pw", [b"12345678"], 0), ValueError),
    "evp-rounds-0-no-salts": (lambda k: k.evp_md5(b"pw", [], 0), ValueError),
    "evp-rounds-negative": (lambda k: k.evp_md5(b"pw", [b"12345678"], -1), ValueError),
    "evp-salt-str": (lambda k: k.evp_md5(b"pw", ["12345678"], 2048), TypeError),
    "evp-salt-int": (lambda k: k.evp_md5(b"pw", [12345678], 2048), TypeError),
    "evp-salts-one-bytes": (lambda k: k.evp_md5(b"pw", b"12345678", 2048), TypeError),
    "evp-salts-none": (lambda k: k.evp_md5(b"pw", None, 2048), TypeError),
    "evp-password-str": (lambda k: k.evp_md5("pw", [b"12345678"], 2048), TypeError),
    "evp-unknown-isa": (lambda k: k.evp_md5(b"pw", [b"12345678"], 2048, isa="z80"), ValueError),
    "pbkdf2-length-33": (lambda k: k.pbkdf2_sha256(b"pw", [b"salt"], 2048, 33), ValueError),
    "pbkdf2-length-0": (lambda k: k.pbkdf2_sha256(b"pw", [b"salt"], 2048, 0), ValueError),
    "pbkdf2-iterations-0": (lambda k: k.pbkdf2_sha256(b"pw", [b"salt"], 0), ValueError),
    "pbkdf2-salt-str": (lambda k: k.pbkdf2_sha256(b"pw", ["salt"], 2048), TypeError),
    "pbkdf2-salt-none": (lambda k: k.pbkdf2_sha256(b"pw", [b"salt", None], 2048), TypeError),
    "pbkdf2-salts-one-str": (lambda k: k.pbkdf2_sha256(b"pw", "salt", 2048), TypeError),
}


@pytest.mark.parametrize("call, error", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_rejected(kdf: ModuleType, call: Callable[[ModuleType], object],
                               error: type[Exception]) -> None:
    with pytest.raises(error):
        call(kdf)


@pytest.mark.parametrize("function", ["evp_md5", "pbkdf2_sha256"])
def test_the_gil_is_released_while_deriving(kdf: ModuleType, function: str) -> None:
    """A Python thread keeps running in the middle of a long derivation."""
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    salts = [b"%08d" % i for i in range(2048)]
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        if function == "evp_md5":
            kdf.evp_md5(b"bench-key-0", salts, 4096)
        else:
            kdf.pbkdf2_sha256(b"bench-key-0", salts[:1024], 2048)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    quarter = (end - start) / 4
    during = [t for t in ticks if start + quarter < t < end - quarter]
    assert len(during) >= 3, f"{len(during)} ticks in the middle of a {end - start:.3f}s call"
