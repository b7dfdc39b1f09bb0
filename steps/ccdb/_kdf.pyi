"""Types of the optional compiled module ``steps/ccdb/_kdf.c`` (multi-buffer key derivation
and AES-128-CBC with AES-NI)."""

from collections.abc import Sequence

ISA: str
LANES: int
HAS_AES: bool
_ISAS: tuple[str, ...]
_ROWS_PER_PASS: dict[str, int]

def evp_md5(password: bytes, salts: Sequence[bytes], rounds: int, *,
            isa: str | None = None) -> bytes: ...
def pbkdf2_sha256(password: bytes, salts: Sequence[bytes], iterations: int,
                  length: int = 16, *, isa: str | None = None) -> bytes: ...
def aes128_cbc_decrypt(key: bytes, iv: bytes, data: bytes, /) -> bytes: ...
def aes128_cbc_encrypt(key: bytes, iv: bytes, data: bytes, /) -> bytes: ...
