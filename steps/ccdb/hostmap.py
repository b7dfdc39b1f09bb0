"""Rewriting old host addresses to new ones inside CCDB values, structurally.

A host map entry may be an IP, a hostname, a ``host:port`` pair or a URL prefix
(``https://broker.old:8443/``). Matching is by whole token: ``10.0.0.5`` never rewrites
``10.0.0.50`` or ``110.0.0.5``, ``db.old.example`` never rewrites ``mydb.old.example`` or
``db.old.example.com``. Longer entries win, so a ``host:port`` entry beats the bare host.
Hostnames and URL schemes match case-insensitively, as DNS does.

JSON values (credentials, environment variables, volume mounts) are rewritten inside
their string literals only (keys and values, at any depth, including URIs and JSON nested
in strings); the bytes between literals, and every literal that does not change, are kept
exactly, because Cloud Controller's serialiser (Oj in rails mode) escapes differently
from Python's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_TOKEN = "A-Za-z0-9_\\-"
# A JSON string literal; in valid JSON text no quote occurs outside literals, so scanning
# from the start tokenises correctly.
_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_HOST = re.compile(r'[\s"\\]')
_KEY_END = re.compile(r"\s*:")  # what follows a literal that is an object key
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|private|cert", re.IGNORECASE)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:(?:\\?/){2}[^:/@\s\"]*):([^@/\s\"]*)@")
_SECRET_QUERY = re.compile(r"((?:pass\w*|pwd|secret\w*|token|\w*key)=)([^&\s\"]*)", re.IGNORECASE)
_OJ_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"}


class HostMapError(ValueError):
    pass


@dataclass(frozen=True)
class Change:
    """One changed string (a JSON literal's decoded text, or a whole plain value)."""

    key: str | None  # the JSON key the string belongs to, when it is a value
    old: str
    new: str


class HostMap:
    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = dict(mapping)
        self._check()
        variants: dict[str, str] = {}
        for old, new in self.mapping.items():
            variants[old.lower()] = new
            if "/" in old:  # URL prefixes may appear with JSON's optional "\/" escape
                variants[old.replace("/", "\\/").lower()] = new.replace("/", "\\/")
        self._variants = variants
        alternatives = [self._pattern(v) for v in sorted(variants, key=len, reverse=True)]
        self._regex = re.compile("|".join(alternatives), re.IGNORECASE)
        self._anywhere = re.compile("|".join(re.escape(v) for v in variants), re.IGNORECASE)
        self._raw = re.compile("|".join(self._pattern(v, after_oj_escape=True) for v in
                                        sorted(variants, key=len, reverse=True)), re.IGNORECASE)

    def _check(self) -> None:
        if not self.mapping:
            raise HostMapError("the host map is empty: give at least one 'old: new' entry")
        for old, new in self.mapping.items():
            if not old.strip() or not new.strip():
                raise HostMapError("host map entries must not be empty")
            if old.strip() != old or new.strip() != new:
                raise HostMapError(f"host map entry {old!r}: remove the surrounding spaces")
            if _NOT_HOST.search(old) or _NOT_HOST.search(new):
                raise HostMapError(f"host map entry {old!r}: hosts and URL prefixes cannot "
                                   "contain spaces, quotes or backslashes")
        olds = [o.lower() for o in self.mapping]
        for old, new in self.mapping.items():
            if old.lower() == new.lower():
                raise HostMapError(f"host map entry {old!r} maps a host to itself")
        # A new address that is itself an old one would make a second apply rewrite again.
        probe = HostMap.__new__(HostMap)
        probe._variants = {o: o for o in olds}
        longest_first = sorted(olds, key=len, reverse=True)
        probe._regex = re.compile("|".join(self._pattern(o) for o in longest_first),
                                  re.IGNORECASE)
        for new in self.mapping.values():
            hit = probe._regex.search(new)
            if hit:
                raise HostMapError(f"host map target {new!r} contains the old address "
                                   f"{hit.group(0)!r}: the rewrite would not be idempotent")

    @staticmethod
    def _pattern(text: str, after_oj_escape: bool = False) -> str:
        body = re.escape(text)
        if text[:1].isalnum():
            # The boundary test sits after the first character, so every alternative
            # starts with a literal and the regex engine skips ahead to candidate
            # characters instead of testing lookbehinds at every position (5x faster).
            # In raw Oj text "\u0026" ends in a digit but stands for "&", a boundary.
            first, rest = re.escape(text[0]), re.escape(text[1:])
            extra = "".join(f"|(?<={re.escape(e)}{first})" for e in _OJ_ESCAPES.values())
            body = (f"{first}(?:(?<![{_TOKEN}.]{first}){extra if after_oj_escape else ''})"
                    f"{rest}")
        if text[-1:].isalnum():
            body = f"{body}(?![{_TOKEN}]|\\.[A-Za-z0-9])"
        return body

    def _replace(self, match: re.Match[str]) -> str:
        return self._variants[match.group(0).lower()]

    def sub(self, text: str) -> str:
        return self._regex.sub(self._replace, text)

    def found(self, text: str) -> list[str]:
        """The old addresses present in ``text`` (as written there)."""
        return [m.group(0) for m in self._regex.finditer(text)]

    def rewrite(self, text: str, is_json: bool | None = None,
                explain: bool = True) -> tuple[str, list[Change]]:
        """Rewrite a value: structurally when it is a JSON object or array, else as text.

        ``is_json`` skips the check when the caller has already parsed the value. With
        ``explain=False`` the changed strings are not listed, which lets JSON whose only
        escapes are Oj's take a single-pass route: without other escapes every literal's
        text is its value, and an entry (no quotes, backslashes or spaces) can only match
        inside a literal, so rewriting the raw text is the same as rewriting each value.
        """
        if is_json is None:
            is_json = _json_container(text)
        if is_json and not explain and _only_oj_escapes(text):
            return self._raw.sub(self._replace, text), []
        if is_json:
            return self.rewrite_json(text)
        new = self.sub(text)
        return new, ([Change(None, text, new)] if new != text else [])

    def rewrite_json(self, text: str, skip_key: str | None = None) -> tuple[str, list[Change]]:
        """Rewrite inside every string literal; values of ``skip_key`` are left alone."""
        if "\\u" not in text and self._anywhere.search(text) is None:
            return text, []  # no old host even without token boundaries, none behind \u
        out: list[str] = []
        changes: list[Change] = []
        last_key: str | None = None
        position = 0
        for match in _LITERAL.finditer(text):
            literal = match.group(0)
            decoded = json.loads(literal) if "\\" in literal else literal[1:-1]
            is_key = _KEY_END.match(text, match.end()) is not None
            skip = skip_key is not None and not is_key and last_key == skip_key
            new = decoded if skip else self.sub(decoded)
            out.append(text[position:match.start()])
            position = match.end()
            if new != decoded:
                out.append(self._encode_like(literal, new))
                changes.append(Change(None if is_key else last_key, decoded, new))
            else:
                out.append(literal)
            if is_key:
                last_key = decoded
        out.append(text[position:])
        return "".join(out), changes

    def _encode_like(self, literal: str, new: str) -> str:
        """Re-encode a changed literal, keeping the original's escaping where possible."""
        candidate = self.sub(literal)
        try:
            if json.loads(candidate) == new:
                return candidate
        except ValueError:
            pass
        encoded = json.dumps(new, ensure_ascii="\\u" in literal and not _oj_only(literal))
        for char, escape in _OJ_ESCAPES.items():
            if escape in literal:
                encoded = encoded.replace(char, escape)
        if "\\/" in literal:
            encoded = encoded.replace("/", "\\/")
        return encoded


def _only_oj_escapes(text: str) -> bool:
    backslashes = text.count("\\")
    return not backslashes or backslashes == sum(text.count(e) for e in _OJ_ESCAPES.values())


def _json_container(text: str) -> bool:
    if text[:1] not in "{[" or text.rstrip()[-1:] not in "}]":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _oj_only(literal: str) -> bool:
    """True when the only \\u escapes are Oj's HTML-safe ones (non-ASCII stays raw)."""
    escapes = re.findall(r"\\u([0-9a-fA-F]{4})", literal)
    return all(e.lower() in ("0026", "003c", "003e") for e in escapes)


def mask(text: str) -> str:
    """Hide passwords inside URIs and query strings; hosts stay visible."""
    text = _USERINFO.sub(r"\1:***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)


def describe(change: Change, width: int = 90) -> str:
    """One redacted example: ``uri: "…old…" -> "…new…"``; secret-looking keys are masked."""
    if change.key is not None and _SECRET_KEY.search(change.key) and "://" not in change.old:
        old, new = "***", "***"
    else:
        old, new = _clip(mask(change.old), width), _clip(mask(change.new), width)
    prefix = f"{change.key}: " if change.key is not None else ""
    return f'{prefix}"{old}" -> "{new}"'


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"
