"""Cloud Controller's Encryptor reproduced byte for byte: hard-coded vectors computed once
with Ruby's OpenSSL, and a live comparison against Ruby when it is installed."""

from __future__ import annotations

import random

import pytest

from steps.ccdb import crypto
from tests.steps.ccdb.conftest import RubyCall

# (op, plaintext, key, salt, iterations, ciphertext) from tests/steps/ccdb/encryptor.rb
# (ruby 3.1.2, OpenSSL 3.0): legacy 8-char salts, PBKDF2 16-char salts, unicode,
# multi-block values, the empty 2014 default key, 100,000 iterations, MIME Base64.
VECTORS = [
    ("encrypt", '{"uri":"postgres://u:p@10.0.0.5:5432/db"}', "cc-db-key", "3f2a9c1e", 2048,
     "oGBQqN7YHhLGBjESI2f5nhb7rcqzCSgb1Ap2WDbKF8FMXRllRV8i+iu68H5JFNtB"),
    ("encrypt", '{"host":"10.0.0.5","name":"ünïcødé ✓ データ"}', "cc-db-key", "3f2a9c1e0b7d4a61",
     2048, ("KAmsutdJdNQHtN0hPWqhkbaRnwzFlTCiCtXqutdFQVDqu56gQKpsn++TKwktVQhff0ZG96YNdBnqua951W"
           "X6+g==")),
    ("encrypt", "x" * 70, "", "a1b2c3d4", 2048,
     ("NUfXooqNti0EXVuFFganZNhngQo7ZyEyiHiwBjTY1C88R2/RR2WkKFtPApzlLgzA3NBO3BdprMVbQdmY4HK3zNDj"
     "Vng03lw1f6n3MM+HnCQ=")),
    ("encrypt", '{"API_URL":"http://db.old.example:8080/api?x=1\\u0026y=2"}', "key-one",
     "0011223344556677", 100000,
     "X7D3iXADEn06ql66U+eW9Tdmi/+NQn+zNwK945wlODcdvWx171N8cHSA96+tMuNmxzf/1Eiw2Fp1IwGiiRA4Zw=="),
    ("encrypt", "broker-secret-1", "encryption_key_0 secret", "deadbeefcafef00d", 4096,
     "i567z3E0j3apgtidqfxdSw=="),
    ("encrypt_mime", ('{"credentials":{"hostname":"10.0.0.5","port":5432,"password":"s3cr3t-with-a-'
     'long-tail-to-span-blocks"}}'), "old-2013-key", "9a8b7c6d", 2048,
     ("K5sjJDzxlOvxG994I1+jlj/CiSI06uuZe2DHGrrP9SaRUTjJ/zHqPjXWjbty\nQri5ZV1MqzF6pIfKy5BhAJSbLNhj"
     "Rg7tjq0Y9wa3EdRG3Rhemaaus9lf8BA0\nAnkgirYZJhlWyh/ccBlQLRCBuv2xQg==\n")),
]


@pytest.mark.parametrize("op,plain,key,salt,iterations,expected", VECTORS)
def test_known_vectors_decrypt_and_reencrypt_byte_exact(op: str, plain: str, key: str, salt: str,
                                                         iterations: int, expected: str) -> None:
    assert crypto.decrypt(expected, key, salt, iterations) == plain
    strict = crypto.encrypt(plain, key, salt, iterations)
    assert strict == expected.replace("\n", "")  # CC writes strict Base64 since 2014-03-25


def test_legacy_salt_ignores_the_iteration_column() -> None:
    _op, plain, key, salt, _n, expected = VECTORS[0]
    assert crypto.encrypt(plain, key, salt, 100000) == expected


def test_evp_bytes_to_key_known_answer() -> None:
    # OpenSSL EVP_BytesToKey(aes-128-cbc, md5, "abcdef01", "secretkey", count=2048),
    # computed once through libcrypto.
    key, iv = crypto.evp_bytes_to_key(b"secretkey", b"abcdef01")
    assert key.hex() == "b8151fdc6fc8a7f227227006106d94b8"
    assert iv.hex() == "4a35996856e3361035c6e7d98fb61382"


def test_salt_is_used_as_ascii_not_hex() -> None:
    key, iv = crypto.derive("k", "0123456789abcdef", 2048)
    assert iv == b"0123456789abcdef"
    assert len(key) == 16


def test_wrong_key_is_refused() -> None:
    _op, _plain, _key, salt, iterations, expected = VECTORS[1]
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(expected, "not-the-key", salt, iterations)


def test_empty_plaintext_cannot_be_encrypted_like_in_cloud_controller() -> None:
    with pytest.raises(ValueError, match="empty"):
        crypto.encrypt("", "k", "0123456789abcdef")


def test_lenient_base64_reads_mime_and_missing_padding() -> None:
    assert crypto.lenient_b64decode("aGVs\nbG8=\n") == b"hello"
    assert crypto.lenient_b64decode("aGVsbG8") == b"hello"


def test_keyring_falls_back_like_cloud_controller() -> None:
    ring = crypto.KeyRing("default", {"k1": "one"})
    assert ring.key_for("k1") == "one"
    assert ring.key_for(None) == "default"
    assert ring.key_for("unknown") == "default"
    assert crypto.KeyRing("", {}).key_for(None) == ""  # the 2014 default key
    with pytest.raises(crypto.DecryptionFailed, match="no key for label 'k9'"):
        crypto.KeyRing(None, {"k1": "one"}).key_for("k9")


def _random_cases(count: int) -> list[tuple[str, str, str, int]]:
    rng = random.Random(4)
    alphabet = 'abc XYZ 0123 {}[]":,/\\&<> é ü ✓ データ 😀 \n\t'
    cases = []
    for i in range(count):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200)))
        legacy = i % 2 == 0
        salt = f"{rng.getrandbits(32 if legacy else 64):0{8 if legacy else 16}x}"
        key = rng.choice(["", "k", "key with spaces ✓", "x" * 64])
        cases.append((text, key, salt, rng.choice([2048, 2049, 5000])))
    return cases


def test_python_and_ruby_agree_both_ways(ruby: RubyCall) -> None:
    cases = _random_cases(60)
    requests = [{"op": op, "input": t, "key": k, "salt": s, "iterations": n}
                for t, k, s, n in cases for op in ("encrypt", "encrypt_mime")]
    answers = ruby(requests)
    pairs = zip(cases, answers[0::2], answers[1::2], strict=True)
    for (text, key, salt, n), strict, mime in pairs:
        assert crypto.encrypt(text, key, salt, n) == strict["output"]
        assert crypto.decrypt(mime["output"], key, salt, n) == text
    ours = [crypto.encrypt(t, k, s, n) for t, k, s, n in cases]
    back = ruby([{"op": "decrypt", "input": c, "key": k, "salt": s, "iterations": n}
                 for c, (_t, k, s, n) in zip(ours, cases, strict=True)])
    assert [b["output"] for b in back] == [t for t, _k, _s, _n in cases]


def test_ruby_refuses_empty_input_too(ruby: RubyCall) -> None:
    [answer] = ruby([{"op": "encrypt", "input": "", "key": "k", "salt": "0123456789abcdef",
                      "iterations": 2048}])
    assert "data must not be empty" in answer["error"]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_derive_many_matches_derive_row_by_row(compiled: bool, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    if compiled and not crypto.compiled():
        pytest.skip("the compiled _kdf module is not built (tests/steps/ccdb/"
                    "test_ccdb_kdf_accel.py fails for that in CI)")
    if not compiled:
        monkeypatch.setattr(crypto, "_kdf", None)
    rng = random.Random(7)
    legacy = [f"{rng.getrandbits(32):08x}" for _ in range(37)]
    modern = [f"{rng.getrandbits(64):016x}" for _ in range(21)]
    bad = ["short", "x" * 17, "ü" * 8]  # a PBKDF2 salt that is not 16 bytes; a non-ASCII 8-char
    salts = legacy + modern + bad + legacy[:5]  # duplicates too
    for password in ["cc-db-key", "", "ünïcødé"]:
        for iterations in (2048, 3):
            found = crypto.derive_many(password, salts, iterations)
            assert set(found) <= set(salts)
            assert set(legacy + modern) <= set(found)
            assert "short" not in found and "x" * 17 not in found
            for salt, pair in found.items():
                assert pair == crypto.derive(password, salt, iterations), salt


@pytest.mark.parametrize("iterations", [0, -5, 2**31])
def test_an_impossible_iteration_count_fails_only_that_row(iterations: int) -> None:
    salts = [f"{i:016x}" for i in range(20)]
    with pytest.raises(crypto.DecryptionFailed, match=f"encryption_iterations {iterations} is "
                                                      "not a usable count"):
        crypto.derive("k", salts[0], iterations)
    assert crypto.derive_many("k", salts, iterations) == {}
    legacy = crypto.derive("k", "a1b2c3d4", iterations)  # 8-character salts ignore the count
    assert legacy == crypto.derive("k", "a1b2c3d4", 2048)
