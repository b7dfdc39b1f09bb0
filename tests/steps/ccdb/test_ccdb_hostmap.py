"""Host replacement: whole tokens only, structural inside JSON, original bytes kept."""

from __future__ import annotations

import json

import pytest

from steps.ccdb.hostmap import Change, HostMap, HostMapError, describe, mask

MAP = HostMap({"10.0.0.5": "10.1.0.5", "db.old.example": "db.new.example",
               "10.0.0.7:5432": "10.1.0.7:6432", "https://broker.old:8443/v2": "https://broker.new/v2"})


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.5", "10.1.0.5"),
    ("10.0.0.50", "10.0.0.50"),                     # a longer IP is another host
    ("110.0.0.5", "110.0.0.5"),
    ("10.0.0.5.nip.io", "10.0.0.5.nip.io"),         # a name that merely starts like it
    ("http://10.0.0.5:8080/x", "http://10.1.0.5:8080/x"),
    ("user:pw@10.0.0.5:22", "user:pw@10.1.0.5:22"),
    ("mydb.old.example", "mydb.old.example"),
    ("db.old.example.com", "db.old.example.com"),
    ("DB.OLD.EXAMPLE", "db.new.example"),            # DNS names are case-insensitive
    ("db.old.example.", "db.new.example."),          # end of sentence, not a longer name
    ("10.0.0.7:5432", "10.1.0.7:6432"),              # host:port entry
    ("10.0.0.7:54321", "10.0.0.7:54321"),
    ("10.0.0.7:3306", "10.0.0.7:3306"),              # only that port is mapped
    ("https://broker.old:8443/v2/catalog", "https://broker.new/v2/catalog"),
    ("https://broker.old:8443/v3", "https://broker.old:8443/v3"),
    ("a 10.0.0.5,10.0.0.5;10.0.0.50", "a 10.1.0.5,10.1.0.5;10.0.0.50"),
])
def test_plain_text(text: str, expected: str) -> None:
    assert MAP.rewrite(text)[0] == expected


def test_json_keys_values_nested_and_inside_uris_keep_other_bytes() -> None:
    text = ('{"10.0.0.5":{"uri":"mysql://u:p@10.0.0.5:3306/d?x=1\\u0026y=2","hosts":["10.0.0.5",'
            '"10.0.0.50"],"port":3306,"n\\u00e9":"caf\\u00e9"} , '
            '"inner":"{\\"host\\":\\"10.0.0.5\\"}"}')
    new, changes = MAP.rewrite(text)
    assert new == text.replace("10.0.0.5\"", "10.1.0.5\"").replace("10.0.0.5:", "10.1.0.5:") \
        .replace('\\"10.0.0.5\\"', '\\"10.1.0.5\\"')
    data = json.loads(new)
    assert "10.1.0.5" in data and data["10.1.0.5"]["hosts"] == ["10.1.0.5", "10.0.0.50"]
    assert json.loads(data["inner"]) == {"host": "10.1.0.5"}
    assert " , " in new and "\\u0026" in new and "caf\\u00e9" in new  # untouched bytes kept
    assert {c.key for c in changes} == {None, "uri", "hosts", "inner"}


def test_json_with_escaped_slashes_and_oj_escapes() -> None:
    text = '{"url":"https:\\/\\/broker.old:8443\\/v2\\/x","q":"a\\u0026b 10.0.0.5"}'
    new, _ = MAP.rewrite(text)
    assert new == '{"url":"https:\\/\\/broker.new\\/v2\\/x","q":"a\\u0026b 10.1.0.5"}'


def test_changed_literal_with_other_escapes_is_reencoded_faithfully() -> None:
    text = '{"motd":"line\\n10.0.0.5 & <ok> é"}'
    new, _ = MAP.rewrite(text)
    assert json.loads(new) == {"motd": "line\n10.1.0.5 & <ok> é"}


def test_unchanged_value_is_returned_identical() -> None:
    text = '{"host":"10.0.0.50", "x": [1, 2.50, null]}'
    assert MAP.rewrite(text) == (text, [])


def test_text_that_only_looks_like_json_is_treated_as_text() -> None:
    assert MAP.rewrite("{10.0.0.5}")[0] == "{10.1.0.5}"


@pytest.mark.parametrize("mapping,message", [
    ({}, "empty"),
    ({"10.0.0.5": "10.0.0.5"}, "to itself"),
    ({"10.0.0.5": "10.0.0.6", "10.0.0.6": "10.0.0.7"}, "not be idempotent"),
    ({" 10.0.0.5": "10.1.0.5"}, "spaces"),
])
def test_bad_maps_are_refused(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(HostMapError, match=message):
        HostMap(mapping)


def test_a_longer_name_containing_the_old_one_is_a_valid_target() -> None:
    assert HostMap({"old.example": "x.old.example"}).sub("old.example") == "x.old.example"


def test_masking_hides_passwords_keeps_hosts() -> None:
    assert mask("postgres://admin:s3cret@10.0.0.5:5432/db") == "postgres://admin:***@10.0.0.5:5432/db"
    assert mask("http://h/x?user=a&password=s3cret&token=abc") == "http://h/x?user=a&password=***&token=***"
    assert describe(Change("password", "10.0.0.5pw", "10.1.0.5pw")) == 'password: "***" -> "***"'
    assert "s3cret" not in describe(Change("uri", "mysql://u:s3cret@10.0.0.5/d",
                                           "mysql://u:s3cret@10.1.0.5/d"))


def test_a_host_spelled_with_unicode_escapes_is_still_found() -> None:
    new, changes = MAP.rewrite('{"h":"10.0.0.\\u0035"}')
    assert json.loads(new) == {"h": "10.1.0.5"} and len(changes) == 1


def test_single_pass_route_equals_the_literal_by_literal_route() -> None:
    import random

    rng = random.Random(7)
    pieces = ["10.0.0.5", "10.0.0.50", "db.old.example", "mydb.old.example", "10.0.0.7:5432",
              "https://broker.old:8443/v2/x", "&", "<", ">", " ", "/", ":", "@", "é", "x", "\n",
              "\\", '"', "10.0.0.5&", "&10.0.0.5", "<10.0.0.5>"]
    for _ in range(400):
        def word() -> str:
            return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        doc = {word(): [word(), {"k": word()}, 5432], "n": {word(): word()}}
        for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False),
                     json.dumps(doc, ensure_ascii=False).replace("&", "\\u0026")
                     .replace("<", "\\u003c").replace(">", "\\u003e")):
            slow, _ = MAP.rewrite(text, True, explain=True)
            fast, _ = MAP.rewrite(text, True, explain=False)
            assert fast == slow, text
            assert json.loads(slow) == json.loads(MAP.rewrite_json(text)[0])


def test_entries_with_quotes_or_spaces_are_refused() -> None:
    with pytest.raises(HostMapError, match="cannot contain spaces, quotes or backslashes"):
        HostMap({'10.0.0.5"': "10.1.0.5"})
