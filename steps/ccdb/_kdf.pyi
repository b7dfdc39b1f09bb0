"""Types of the optional compiled module ``steps/ccdb/_kdf.c`` (multi-buffer key derivation)."""

from collections.abc import Sequence

ISA: str
LANES: int

def evp_md5(password: bytes, salts: Sequence[bytes], rounds: int) -> bytes: ...
def pbkdf2_sha256(password: bytes, salts: Sequence[bytes], iterations: int,
                  length: int = 16) -> bytes: ...
