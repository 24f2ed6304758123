"""kernel/params.c and lib/kstrtox.c as pure logic: argument strings, every
parameter type's limits and spellings, arrays, strings, the param_ops objects."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, strategies as st

from kloaderd.kernel import api
from kloaderd.kernel.api.params import PARAM_OPS
from kloaderd.kernel.params import (PARAM_TYPES, ParamError, check_string, format_array,
                                    kstrtobool, kstrtoll, kstrtoull, next_arg, param_equal,
                                    param_error_message, parse_args, parse_array, split_args)


# -- argument strings ------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    ("", []),
    ("   ", []),
    ("a=1 b=2", [("a", "1"), ("b", "2")]),
    ("  a=1\t\tb  ", [("a", "1"), ("b", None)]),
    ('name="va lue" x=y', [("name", "va lue"), ("x", "y")]),
    ('"name=va lue" x', [("name", "va lue"), ("x", None)]),
    ('a="" b=', [("a", ""), ("b", "")]),
    ("a=b=c", [("a", "b=c")]),
    ("=x", [("=x", None)]),
    ('a="unterminated value', [("a", "unterminated value")]),
    ("a=1 -- b=2", [("a", "1")]),
])
def test_parse_args(args, expected):
    assert parse_args(args) == expected


def test_next_arg_returns_the_rest_without_leading_spaces():
    assert next_arg("a=1   b=2 c") == ("a", "1", "b=2 c")
    assert next_arg('"q=1 2"  rest') == ("q", "1 2", "rest")


def test_arguments_after_dashes_are_handed_back():
    assert split_args("a=1 -- b=2  c") == ([("a", "1")], "b=2  c")
    assert split_args("a=1 --x") == ([("a", "1"), ("--x", None)], None)


def test_param_equal():
    assert param_equal("max_count", "max-count")
    assert param_equal("a-b_c", "a_b-c")
    assert not param_equal("max_count", "maxcount")


def test_error_messages_as_parse_args_logs_them():
    assert param_error_message("hello", "count", "abc", errno.EINVAL) == \
        "hello: `abc' invalid for parameter `count'"
    assert param_error_message("hello", "name", "x" * 3, errno.ENOSPC) == \
        "hello: `xxx' too large for parameter `name'"
    assert param_error_message("hello", "nope", None, errno.ENOENT) == \
        "hello: Unknown parameter `nope'"


# -- kstrtox ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, base, value", [
    ("0", 0, 0), ("42", 0, 42), ("+42", 0, 42), ("052", 0, 42), ("0x2a", 0, 42),
    ("0X2A", 0, 42), ("2a", 16, 42), ("0x2a", 16, 42), ("42\n", 10, 42), ("101", 2, 5),
    ("18446744073709551615", 0, 2**64 - 1), ("0xffffffffffffffff", 0, 2**64 - 1),
])
def test_kstrtoull_accepts(text, base, value):
    assert kstrtoull(text, base) == value


@pytest.mark.parametrize("text, base, err", [
    ("", 0, errno.EINVAL), ("+", 0, errno.EINVAL), (" 1", 0, errno.EINVAL),
    ("1 ", 0, errno.EINVAL), ("1\n\n", 0, errno.EINVAL), ("0x", 0, errno.EINVAL),
    ("0x", 16, errno.EINVAL), ("09", 0, errno.EINVAL), ("-1", 0, errno.EINVAL),
    ("12a", 10, errno.EINVAL), ("0xg", 0, errno.EINVAL),
    ("18446744073709551616", 0, errno.ERANGE),
    ("99999999999999999999999junk", 0, errno.ERANGE),    # overflow is found before junk
])
def test_kstrtoull_rejects(text, base, err):
    with pytest.raises(ParamError) as e:
        kstrtoull(text, base)
    assert e.value.errno == err


def test_kstrtoll_limits():
    assert kstrtoll("-9223372036854775808") == -2**63
    assert kstrtoll("9223372036854775807") == 2**63 - 1
    assert kstrtoll("-0") == 0
    for text in ("-9223372036854775809", "9223372036854775808"):
        with pytest.raises(ParamError) as e:
            kstrtoll(text)
        assert e.value.errno == errno.ERANGE
    for text in ("-+1", "+-1", "--1", "-"):
        with pytest.raises(ParamError) as e:
            kstrtoll(text)
        assert e.value.errno == errno.EINVAL


@given(st.integers(-2**63, 2**63 - 1), st.sampled_from([10, 16, 8]))
def test_kstrtoll_agrees_with_python(value, base):
    digits = format(abs(value), {10: "d", 16: "x", 8: "o"}[base])
    text = ("-" if value < 0 else "") + digits
    assert kstrtoll(text, base) == value
    assert kstrtoll(text + "\n", base) == int(text, base)


@pytest.mark.parametrize("text, value", [
    ("y", True), ("Y", True), ("yes", True), ("t", True), ("True", True), ("1", True),
    ("1x", True), ("on", True), ("ON", True), ("n", False), ("no", False), ("F", False),
    ("0", False), ("off", False), ("Of", False),
])
def test_kstrtobool_spellings(text, value):
    assert kstrtobool(text) is value


@pytest.mark.parametrize("text", ["", "2", "o", "ox", "maybe", " y", None])
def test_kstrtobool_rejects(text):
    with pytest.raises(ParamError):
        kstrtobool(text)


# -- the types ---------------------------------------------------------------------------

LIMITS = {   # type: (lowest valid, highest valid, size)
    "byte": (0, 255, 1), "short": (-32768, 32767, 2), "ushort": (0, 65535, 2),
    "int": (-2**31, 2**31 - 1, 4), "uint": (0, 2**32 - 1, 4), "long": (-2**63, 2**63 - 1, 8),
    "ulong": (0, 2**64 - 1, 8), "ullong": (0, 2**64 - 1, 8), "hexint": (0, 2**32 - 1, 4),
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_integer_types_take_their_whole_range_and_nothing_more(name):
    low, high, size = LIMITS[name]
    ptype = PARAM_TYPES[name]
    assert ptype.size == size
    for value in (low, high, (low + high) // 2):
        parsed = ptype.parse(str(value))
        assert parsed == value
        assert ptype.decode(ptype.encode(parsed)) == value
        assert len(ptype.encode(parsed)) == size
    for value in (low - 1, high + 1):
        with pytest.raises(ParamError) as e:
            ptype.parse(str(value))
        assert e.value.errno in (errno.ERANGE, errno.EINVAL)   # "-1" for unsigned is EINVAL
    with pytest.raises(ParamError):
        ptype.parse(None)
    with pytest.raises(ParamError):
        ptype.parse("12abc")


def test_integer_types_take_base_prefixes():
    assert PARAM_TYPES["int"].parse("0x10") == 16
    assert PARAM_TYPES["int"].parse("-010") == -8
    assert PARAM_TYPES["byte"].parse("0xff") == 255
    assert PARAM_TYPES["hexint"].parse("0xff") == 255
    with pytest.raises(ParamError):
        PARAM_TYPES["hexint"].parse("ff")        # param_set_hexint uses base 0, as Linux


@pytest.mark.parametrize("name, value, shown", [
    ("byte", 200, "200"), ("short", -5, "-5"), ("ushort", 65535, "65535"),
    ("int", -2**31, "-2147483648"), ("uint", 2**32 - 1, "4294967295"),
    ("long", -1, "-1"), ("ulong", 2**64 - 1, "18446744073709551615"),
    ("ullong", 7, "7"), ("hexint", 255, "0x0000ff"), ("hexint", 0xDEADBEEF, "0xdeadbeef"),
    ("bool", True, "Y"), ("bool", False, "N"), ("charp", "text", "text"), ("charp", None, "(null)"),
])
def test_format_as_param_get_prints(name, value, shown):
    assert PARAM_TYPES[name].format(value) == shown


def test_bool_and_invbool():
    boolean, inverse = PARAM_TYPES["bool"], PARAM_TYPES["invbool"]
    assert boolean.parse(None) is True                   # a bare name means "set"
    assert boolean.parse("off") is False
    assert boolean.encode(True) == b"\x01" and boolean.decode(b"\x00") is False
    with pytest.raises(ParamError):
        boolean.parse("2")
    assert inverse.parse("y") is False                   # stored inverted ...
    assert inverse.format(inverse.parse("y")) == "Y"     # ... and shown as given
    assert inverse.format(inverse.parse("n")) == "N"
    with pytest.raises(ParamError):
        inverse.parse(None)                              # no NOARG flag on invbool


def test_charp_length_limit():
    assert PARAM_TYPES["charp"].parse("x" * 1024) == "x" * 1024
    with pytest.raises(ParamError) as e:
        PARAM_TYPES["charp"].parse("x" * 1025)
    assert e.value.errno == errno.ENOSPC
    assert PARAM_TYPES["charp"].encode(0xFFFF888000001000) == (0xFFFF888000001000).to_bytes(8, "little")


def test_arrays():
    ints = PARAM_TYPES["int"]
    assert parse_array("1,-2,0x10", ints, 4, "vals") == [1, -2, 16]
    assert parse_array("7", ints, 1, "vals") == [7]
    assert format_array([1, -2, 16], ints) == "1,-2,16"
    assert format_array([True, False], PARAM_TYPES["bool"]) == "Y,N"
    with pytest.raises(ParamError) as e:
        parse_array("1,2,3", ints, 2, "vals")
    assert (e.value.errno, e.value.message) == (errno.EINVAL, "vals: can only take 2 arguments")
    for bad in ("1,,2", "1,x", "", "300"):
        with pytest.raises(ParamError):
            parse_array(bad, PARAM_TYPES["byte"], 4, "vals")


def test_strings():
    assert check_string("hello", 6, "name") == b"hello\0"
    with pytest.raises(ParamError) as e:
        check_string("hello!", 6, "name")
    assert (e.value.errno, e.value.message) == (errno.ENOSPC, "name: string doesn't fit in 5 chars.")


def test_param_ops_objects():
    api.load_all()
    assert set(PARAM_OPS) == {f"param_ops_{t}" for t in (
        "byte", "short", "ushort", "int", "uint", "long", "ulong", "ullong", "hexint", "bool",
        "invbool", "charp", "string")} | {"param_array_ops"}
    assert PARAM_OPS["param_ops_string"] == "string" and PARAM_OPS["param_array_ops"] == "array"
    for name, kind in PARAM_OPS.items():
        obj = api.OBJECTS[name]
        assert obj.size == 32 and not obj.writable and not obj.gpl
        assert obj.init[:4] == (b"\x01\0\0\0" if kind == "bool" else bytes(4))
        assert kind in PARAM_TYPES or kind in ("string", "array")
