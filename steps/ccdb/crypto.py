"""Cloud Controller's field encryption (``Encryptor``), byte for byte.

Facts (cloud_controller_ng ``lib/cloud_controller/encryptor.rb``, ruby/openssl
``ossl_cipher.c``):

* AES-128-CBC with PKCS#7 padding;
* the key derivation is chosen by the salt's length only: an 8-character salt means
  ``pkcs5_keyivgen`` = ``EVP_BytesToKey(MD5, salt, key, count=2048)`` giving key *and* IV
  (the row's iteration count is ignored); any other salt means
  ``PBKDF2-HMAC-SHA256(key, salt, iterations, 16)`` with the salt's ASCII bytes as the IV;
* salts are used as text, never hex-decoded;
* values are written with strict Base64 and read with a lenient decoder, because rows
  written before 2014-03-25 carry MIME Base64 with a newline every 60 characters;
* the key is picked by the row's label, falling back to ``db_encryption_key`` when the
  label is NULL or unknown (``database_encryption_keys.fetch(label&.to_sym, default)``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from runbook.api import MissingDependency

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingDependency("cryptography", "ccdb") from exc

try:
    # CPython's built-in MD5 avoids OpenSSL's per-call dispatch cost, which dominates when
    # hashing 16 bytes 4,096 times per derivation (about 2.5x faster here).
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - other interpreters
    from hashlib import md5 as _md5

try:
    # Optional compiled multi-buffer derivation (steps/ccdb/_kdf.c): one row per SIMD lane.
    from steps.ccdb import _kdf
except ImportError:  # no compiler at install time: the pure-Python path below
    _kdf = None  # type: ignore[assignment]

#: below this many salts a SIMD pass (padded to whole lanes) costs more than hashlib calls
COMPILED_FROM = 8
MAX_ITERATIONS = 2**31 - 1
LEGACY_SALT_LENGTH = 8
LEGACY_ROUNDS = 2048
DEFAULT_ITERATIONS = 2048
BLOCK = 16
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


class DecryptionFailed(ValueError):
    """A value does not decrypt with the key chosen for it (wrong key or corrupt data)."""


def is_legacy_salt(salt: str) -> bool:
    return len(salt) == LEGACY_SALT_LENGTH


def evp_bytes_to_key(password: bytes, salt: bytes,
                     rounds: int = LEGACY_ROUNDS) -> tuple[bytes, bytes]:
    """OpenSSL ``EVP_BytesToKey`` with MD5 for a 16-byte key and a 16-byte IV.

    Each block is MD5(previous block || password || salt), re-hashed ``rounds - 1`` times.
    """
    blocks: list[bytes] = []
    previous = b""
    while len(blocks) < 2:
        digest = _md5(previous + password + salt).digest()
        for _ in range(rounds - 1):
            digest = _md5(digest).digest()
        blocks.append(digest)
        previous = digest
    return blocks[0], blocks[1]


def derive(password: str, salt: str, iterations: int) -> tuple[bytes, bytes]:
    """The AES key and IV Cloud Controller uses for ``salt`` (see the module docstring)."""
    secret = password.encode("utf-8")
    salt_bytes = salt.encode("utf-8")
    if is_legacy_salt(salt):
        return evp_bytes_to_key(secret, salt_bytes)
    if not 1 <= iterations <= MAX_ITERATIONS:
        # OpenSSL and Ruby take a C int: Cloud Controller cannot have written such a row
        raise DecryptionFailed(f"encryption_iterations {iterations} is not a usable count")
    if len(salt_bytes) != BLOCK:
        # Ruby raises "iv must be 16 bytes" here; such a row cannot exist in a working CC.
        raise DecryptionFailed(f"salt of {len(salt_bytes)} bytes cannot be a 16-byte IV")
    kdf = PBKDF2HMAC(algorithm=SHA256(), length=BLOCK, salt=salt_bytes, iterations=iterations)
    return kdf.derive(secret), salt_bytes


def compiled() -> bool:
    """Whether the compiled multi-buffer derivation module is in use."""
    return _kdf is not None


def accelerator() -> str:
    """How batches of keys are derived here, for reports: the SIMD kernel or Python."""
    if _kdf is None:
        return ("one row at a time (CPython MD5, OpenSSL through cryptography; the compiled "
                "_kdf module is not built)")
    return f"multi-buffer SIMD ({_kdf.ISA}, {_kdf.LANES} lanes per register)"


def derive_many(password: str, salts: list[str],
                iterations: int) -> dict[str, tuple[bytes, bytes]]:
    """:func:`derive` for many salts under one password: salt -> (key, IV).

    With the compiled module, legacy and PBKDF2 salts are each derived in SIMD batches;
    a salt that cannot be a key (a PBKDF2 salt that is not 16 bytes) is left out, so the
    caller's per-row :func:`derive` reports it for that row alone.
    """
    unique = list(dict.fromkeys(salts))
    if _kdf is None or len(unique) < COMPILED_FROM or not 1 <= iterations <= MAX_ITERATIONS:
        found: dict[str, tuple[bytes, bytes]] = {}
        for salt in unique:
            try:
                found[salt] = derive(password, salt, iterations)
            except DecryptionFailed:
                pass
        return found
    secret = password.encode("utf-8")
    legacy = [s for s in unique if is_legacy_salt(s) and len(s.encode("utf-8")) == 8]
    modern = [s for s in unique if not is_legacy_salt(s) and len(s.encode("utf-8")) == BLOCK]
    found = {}
    if legacy:
        out = _kdf.evp_md5(secret, [s.encode("utf-8") for s in legacy], LEGACY_ROUNDS)
        for i, salt in enumerate(legacy):
            found[salt] = (out[32 * i:32 * i + 16], out[32 * i + 16:32 * i + 32])
    if modern:
        encoded = [s.encode("utf-8") for s in modern]
        out = _kdf.pbkdf2_sha256(secret, encoded, iterations, BLOCK)
        for i, salt in enumerate(modern):
            found[salt] = (out[BLOCK * i:BLOCK * (i + 1)], encoded[i])
    return found


def lenient_b64decode(text: str) -> bytes:
    """Like Ruby's ``Base64.decode64``: characters outside the alphabet are skipped and
    missing padding is tolerated."""
    try:  # every value CC wrote since 2014 is strict Base64: the fast path
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    data = _NOT_BASE64.sub(b"", text.encode("ascii", "ignore"))
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data)
    except binascii.Error as exc:  # pragma: no cover - cannot happen after cleaning
        raise DecryptionFailed("value is not Base64") from exc


def _cbc(key: bytes, iv: bytes, data: bytes, decrypt: bool) -> bytes:
    """Raw AES-CBC over whole blocks: AES-NI in the compiled module for AES-128 (no
    per-call Cipher/algorithms/modes objects), else the cryptography package."""
    if _kdf is not None and _kdf.HAS_AES and len(key) == BLOCK and len(iv) == BLOCK:
        if decrypt:
            return _kdf.aes128_cbc_decrypt(key, iv, data)
        return _kdf.aes128_cbc_encrypt(key, iv, data)
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def decrypt_with(ciphertext_b64: str, key: bytes, iv: bytes) -> bytes:
    raw = lenient_b64decode(ciphertext_b64)
    if not raw or len(raw) % BLOCK:
        raise DecryptionFailed("ciphertext length is not a whole number of AES blocks")
    padded = _cbc(key, iv, raw, decrypt=True)
    # PKCS#7, checked as OpenSSL's EVP_DecryptFinal does (no padding oracle here: the
    # ciphertexts are our own database's)
    pad = padded[-1]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes((pad,)) * pad:
        raise DecryptionFailed("bad decrypt (padding check failed)")
    return padded[:-pad]


def encrypt_with(plaintext: bytes, key: bytes, iv: bytes) -> str:
    if not plaintext:
        # Ruby's Cipher#update raises on empty data; CC stores NULL instead.
        raise ValueError("Cloud Controller cannot store an encrypted empty value")
    pad = BLOCK - len(plaintext) % BLOCK
    padded = plaintext + bytes((pad,)) * pad
    raw = _cbc(key, iv, padded, decrypt=False)
    return base64.b64encode(raw).decode("ascii")


def encrypt(plaintext: str, password: str, salt: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    key, iv = derive(password, salt, iterations)
    return encrypt_with(plaintext.encode("utf-8"), key, iv)


def decrypt(ciphertext_b64: str, password: str, salt: str,
            iterations: int = DEFAULT_ITERATIONS) -> str:
    key, iv = derive(password, salt, iterations)
    try:
        return decrypt_with(ciphertext_b64, key, iv).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionFailed("decrypted bytes are not UTF-8 text") from exc


@dataclass(frozen=True)
class KeyRing:
    """Cloud Controller's key configuration, in plain strings: only clients hold one.

    ``db_encryption_key`` may legitimately be the empty string (the 2014 default).
    """

    db_encryption_key: str | None
    keys: dict[str, str] = field(default_factory=dict)
    current_label: str | None = None

    def key_for(self, label: str | None) -> str:
        """The key for a row's label, with Cloud Controller's silent fallback."""
        if label is not None and label in self.keys:
            return self.keys[label]
        if self.db_encryption_key is None:
            shown = "NULL" if label is None else repr(label)
            raise DecryptionFailed(f"no key for label {shown} and no db_encryption_key to "
                                   "fall back to")
        return self.db_encryption_key
