"""004's per-request options: the KEY/{...} suffix and the x-lmgate-* headers."""

from __future__ import annotations

import pytest

from lmgate.errors import BadRequest, Unprocessable
from lmgate.policy.options import parse_suffix, resolve_options, split_key
from lmgate.types import KeyRecord


def test_split_key():
    assert split_key("abc") == ("abc", None)
    assert split_key("abc/{'is_cache': 0}") == ("abc", "{'is_cache': 0}")
    assert split_key("a/b-c") == ("a/b-c", None)  # a slash alone is part of the key


def test_python_literal_and_json():
    userdata = {"is_cache": 0, "use_guard": 2, "app_name": "DSPY", "is_system": False}
    assert parse_suffix(str(userdata), 4096) == userdata
    assert parse_suffix('{"is_cache": 0, "userid": "100"}', 4096) == {"is_cache": 0, "userid": "100"}


@pytest.mark.parametrize("suffix", ["{'a': __import__('os')}", "{'a': (lambda: 1)()}", "[1, 2]", "{'a': 1", "{1: open('x')}"])
def test_never_evaluated(suffix):
    with pytest.raises(BadRequest):
        parse_suffix(suffix, 4096)


def test_size_limit():
    with pytest.raises(BadRequest):
        parse_suffix("{'a': '" + "x" * 5000 + "'}", 4096)


def test_precedence_key_then_suffix_then_headers():
    key = KeyRecord(id="k", name="k", key_hash="h", cache=False, guard=0, metadata={"team": "a"})
    opts = resolve_options(key, None, {}, True, 1)
    assert (opts.cache, opts.guard, opts.metadata) == (False, 0, {"team": "a"})
    opts = resolve_options(key, {"is_cache": 1, "use_guard": 2, "userid": "100"}, {}, True, 1)
    assert (opts.cache, opts.guard) == (True, 2) and opts.metadata == {"team": "a", "userid": "100"}
    opts = resolve_options(key, {"is_cache": 1}, {"x-lmgate-cache": "0", "x-lmgate-guard": "1", "x-lmgate-metadata": '{"Query_Id": "24"}'}, True, 1)
    assert (opts.cache, opts.guard, opts.metadata["Query_Id"]) == (False, 1, "24")
    assert resolve_options(None, None, {"cache-control": "no-cache"}, True, 1).cache is False
    assert resolve_options(None, None, {}, True, 1).app_name is None


@pytest.mark.parametrize("data", [{"use_guard": 5}, {"is_cache": "maybe"}, {"use_guard": True}, {"app_name": 3}, {"x": [1, 2]}])
def test_invalid_values_are_422(data):
    with pytest.raises(Unprocessable):
        resolve_options(None, data, {}, True, 1)


def test_bad_metadata_header_is_400():
    with pytest.raises(BadRequest):
        resolve_options(None, None, {"x-lmgate-metadata": "not json"}, True, 1)
