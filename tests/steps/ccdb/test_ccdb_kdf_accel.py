"""The compiled multi-buffer key derivation (steps/ccdb/_kdf.c), byte for byte against
hashlib and the pure-Python ``crypto.evp_bytes_to_key``, for every instruction set this CPU
can run (not only the one chosen at import), with batch sizes that leave lane groups
partly filled; and its AES-128-CBC (AES-NI) against the cryptography package, directly and
through crypto.decrypt_with/encrypt_with with and without it."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import platform
import random
import threading
import time
from collections.abc import Callable
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from steps.ccdb import crypto
from tests.conftest import missing
from tests.steps.ccdb.test_ccdb_crypto import VECTORS

try:
    from steps.ccdb import _kdf as _compiled
except ImportError as exc:  # no C compiler when the package was installed
    _compiled = None  # type: ignore[assignment]
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


# ---------------------------------------------------------------------------------------
# AES-128-CBC with AES-NI


@pytest.fixture(scope="module")
def aes(kdf: ModuleType) -> ModuleType:
    if not kdf.HAS_AES:
        pytest.skip("this CPU has no AES-NI (_kdf.HAS_AES is False): crypto.py uses the "
                    "cryptography package, tested below as the fallback")
    return kdf


def _cbc(key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def _reference_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = _cbc(key, iv).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _reference_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = _cbc(key, iv).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _cpu_has_aes() -> bool | None:
    """The aes flag of /proc/cpuinfo on x86 Linux; None where that cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return "aes" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return None


def test_has_aes_tells_whether_the_cpu_has_aes_ni(kdf: ModuleType) -> None:
    assert isinstance(kdf.HAS_AES, bool)
    expected = _cpu_has_aes()
    if expected is not None:
        assert kdf.HAS_AES == expected
    if not kdf.HAS_AES:
        for function in (kdf.aes128_cbc_decrypt, kdf.aes128_cbc_encrypt):
            with pytest.raises(RuntimeError, match="AES-NI"):
                function(bytes(16), bytes(16), bytes(16))


def test_aes_fips197_known_answer(aes: ModuleType) -> None:
    """FIPS-197 Appendix C.1 (AES-128): one ECB block is CBC with a zero IV."""
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    plain = bytes.fromhex("00112233445566778899aabbccddeeff")
    cipher = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert aes.aes128_cbc_encrypt(key, bytes(16), plain) == cipher
    assert aes.aes128_cbc_decrypt(key, bytes(16), cipher) == plain


# 144 bytes: one pass of the 8-block interleaved decryption and a tail; 65,536 bytes: the
# size from which the GIL is released.
AES_SIZES = (16, 32, 48, 128, 144, 160, 4096, 16000, 65536)


@pytest.mark.parametrize("size", AES_SIZES)
def test_aes_matches_cryptography(aes: ModuleType, size: int) -> None:
    rng = random.Random(size)
    for _ in range(8):
        key, iv, data = rng.randbytes(16), rng.randbytes(16), rng.randbytes(size)
        encrypted = aes.aes128_cbc_encrypt(key, iv, data)
        assert encrypted == _reference_encrypt(key, iv, data)
        assert aes.aes128_cbc_decrypt(key, iv, data) == _reference_decrypt(key, iv, data)
        assert aes.aes128_cbc_decrypt(key, iv, encrypted) == data


def test_aes_accepts_any_bytes_like(aes: ModuleType) -> None:
    key, iv, data = b"k" * 16, b"i" * 16, bytes(range(64))
    expected = _reference_encrypt(key, iv, data)
    assert aes.aes128_cbc_encrypt(bytearray(key), memoryview(iv), bytearray(data)) == expected
    assert aes.aes128_cbc_decrypt(memoryview(key), bytearray(iv), expected) == data


AES_BAD_INPUT = {
    "key-15": ((b"k" * 15, bytes(16), bytes(16)), ValueError),
    "key-17": ((b"k" * 17, bytes(16), bytes(16)), ValueError),
    "key-32": ((b"k" * 32, bytes(16), bytes(16)), ValueError),  # AES-256: not this function
    "iv-0": ((bytes(16), b"", bytes(16)), ValueError),
    "iv-15": ((bytes(16), bytes(15), bytes(16)), ValueError),
    "data-empty": ((bytes(16), bytes(16), b""), ValueError),
    "data-15": ((bytes(16), bytes(16), bytes(15)), ValueError),
    "data-17": ((bytes(16), bytes(16), bytes(17)), ValueError),
    "data-255": ((bytes(16), bytes(16), bytes(255)), ValueError),
    "key-str": (("k" * 16, bytes(16), bytes(16)), TypeError),
    "iv-none": ((bytes(16), None, bytes(16)), TypeError),
    "data-str": ((bytes(16), bytes(16), "d" * 16), TypeError),
    "data-int": ((bytes(16), bytes(16), 16), TypeError),
    "data-list": ((bytes(16), bytes(16), [0] * 16), TypeError),
    "two-args": ((bytes(16), bytes(16)), TypeError),
    "four-args": ((bytes(16), bytes(16), bytes(16), bytes(16)), TypeError),
}


@pytest.mark.parametrize("direction", ["aes128_cbc_decrypt", "aes128_cbc_encrypt"])
@pytest.mark.parametrize("args, error", AES_BAD_INPUT.values(), ids=AES_BAD_INPUT.keys())
def test_aes_bad_input_is_rejected(aes: ModuleType, direction: str, args: tuple[object, ...],
                                   error: type[Exception]) -> None:
    with pytest.raises(error):
        getattr(aes, direction)(*args)


def test_aes_takes_no_keywords(aes: ModuleType) -> None:
    with pytest.raises(TypeError):
        aes.aes128_cbc_encrypt(key=bytes(16), iv=bytes(16), data=bytes(16))


# crypto.decrypt_with/encrypt_with: the compiled path and the cryptography fallback, which
# runs without the module or without AES-NI.
CRYPTO_PATHS = ["compiled", "fallback-no-module", "fallback-no-aes-ni"]


@pytest.fixture(params=CRYPTO_PATHS)
def crypto_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    path: str = request.param
    if path == "compiled":
        if _compiled is None or not _compiled.HAS_AES:
            pytest.skip("no compiled AES-NI path here (the module is not built or the CPU "
                        "has no AES-NI)")

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("the compiled path must not go through cryptography")

        monkeypatch.setattr(crypto, "Cipher", refuse)
    elif path == "fallback-no-module":
        monkeypatch.setattr(crypto, "_kdf", None)
    else:
        if _compiled is None:
            pytest.skip("the compiled _kdf module is not built")
        monkeypatch.setattr(_compiled, "HAS_AES", False)
    return path


def _pkcs7(data: bytes) -> bytes:
    pad = 16 - len(data) % 16
    return data + bytes((pad,)) * pad


def test_crypto_round_trip_matches_cryptography(crypto_path: str) -> None:
    rng = random.Random(3)
    for size in (1, 15, 16, 17, 100, 256, 4095, 4096, 16000):
        key, iv, plain = rng.randbytes(16), rng.randbytes(16), rng.randbytes(size)
        expected = base64.b64encode(_reference_encrypt(key, iv, _pkcs7(plain))).decode("ascii")
        assert crypto.encrypt_with(plain, key, iv) == expected
        assert crypto.decrypt_with(expected, key, iv) == plain


def test_crypto_ruby_vectors(crypto_path: str) -> None:
    """The byte-exact vectors computed with Ruby's OpenSSL (test_ccdb_crypto.py)."""
    for _op, plain, key, salt, iterations, expected in VECTORS:
        assert crypto.decrypt(expected, key, salt, iterations) == plain
        assert crypto.encrypt(plain, key, salt, iterations) == expected.replace("\n", "")


def test_crypto_other_key_sizes_go_to_cryptography(crypto_path: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Only AES-128 is compiled; AES-256 keys and bad lengths behave as cryptography does."""
    monkeypatch.setattr(crypto, "Cipher", Cipher)  # the compiled path's guard: needed here
    key, iv, plain = b"K" * 32, b"I" * 16, b"a value"
    expected = base64.b64encode(_reference_encrypt(key, iv, _pkcs7(plain))).decode("ascii")
    assert crypto.encrypt_with(plain, key, iv) == expected
    assert crypto.decrypt_with(expected, key, iv) == plain
    with pytest.raises(ValueError):
        crypto.encrypt_with(plain, b"K" * 15, iv)
    with pytest.raises(ValueError):
        crypto.decrypt_with(expected, b"K" * 16, b"I" * 8)


PADDING_FAILURES = {
    "pad-0": b"x" * 15 + b"\x00",
    "pad-17": b"x" * 15 + b"\x11",
    "pad-255": b"x" * 31 + b"\xff",
    "pad-3-inconsistent": b"x" * 13 + b"\x03\x02\x03",
    "pad-16-inconsistent": b"y" * 16 + b"\x0f" + b"\x10" * 15,
}


@pytest.mark.parametrize("padded", PADDING_FAILURES.values(), ids=PADDING_FAILURES.keys())
def test_crypto_padding_failure(crypto_path: str, padded: bytes) -> None:
    key, iv = os.urandom(16), os.urandom(16)
    value = base64.b64encode(_reference_encrypt(key, iv, padded)).decode("ascii")
    with pytest.raises(crypto.DecryptionFailed,
                       match=r"^bad decrypt \(padding check failed\)$"):
        crypto.decrypt_with(value, key, iv)


@pytest.mark.parametrize("raw_length", [0, 1, 15, 17, 31, 33])
def test_crypto_ciphertext_not_whole_blocks(crypto_path: str, raw_length: int) -> None:
    value = base64.b64encode(os.urandom(raw_length)).decode("ascii")
    with pytest.raises(crypto.DecryptionFailed,
                       match="^ciphertext length is not a whole number of AES blocks$"):
        crypto.decrypt_with(value, os.urandom(16), os.urandom(16))


def test_crypto_empty_plaintext(crypto_path: str) -> None:
    with pytest.raises(ValueError,
                       match="^Cloud Controller cannot store an encrypted empty value$"):
        crypto.encrypt_with(b"", os.urandom(16), os.urandom(16))


def test_crypto_wrong_key_is_refused(crypto_path: str) -> None:
    """Decrypting under another key fails the padding check (or, rarely, yields garbage):
    the same outcome on both paths."""
    rng = random.Random(11)
    for _ in range(50):
        key, other, iv = rng.randbytes(16), rng.randbytes(16), rng.randbytes(16)
        value = base64.b64encode(_reference_encrypt(key, iv, _pkcs7(b"secret"))).decode("ascii")
        padded = _reference_decrypt(other, iv, base64.b64decode(value))
        pad = padded[-1]
        if 1 <= pad <= 16 and padded[-pad:] == bytes((pad,)) * pad:
            assert crypto.decrypt_with(value, other, iv) == padded[:-pad]
        else:
            with pytest.raises(crypto.DecryptionFailed, match="padding check failed"):
                crypto.decrypt_with(value, other, iv)


def test_counts_beyond_a_c_int_are_refused(kdf: ModuleType) -> None:
    with pytest.raises(OverflowError):
        kdf.pbkdf2_sha256(b"k", [b"0" * 16], 2**31)
    with pytest.raises(OverflowError):
        kdf.evp_md5(b"k", [b"0" * 8], 2**31)
