"""The stream spec's schema: the type and bounds of every field, checked before any object is built.

A spec comes from a model file that may come from anywhere, so its JSON is checked as data
first: the nesting depth of the text (before ``json.loads``, which would recurse), then every
field against the table ``SCHEMA`` below. Every wrong field is collected, with its JSON path,
what came and the fix, and reported in one ``SpecError`` (validation collects before it refuses).

To add a field to the spec, add one line to the right table here (the dataclass in
``runtime/spec.py``, ``specparts.py`` or ``modelconfig.py`` gets the same field);
``tests/test_spec_schema.py`` checks that the tables and the dataclasses name the same fields.

Example:
    >>> problems(SCHEMA["context"], {"input": "x", "frames": 2.5}, "context")
    ['context.frames: got 2.5 (float), expected an int in [1, 1048576]; fix: a whole number of frames, e.g. 1']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgernn.runtime.errors import SpecError

MAX_JSON_DEPTH = 32  # nesting of [ and { in the spec's text; a real spec nests 4 deep
MAX_DIM = (1 << 31) - 1  # one axis of a declared shape
MAX_RANK = 16
MAX_ENTRIES = 256  # inputs, outputs, states, constants
MAX_NAME = 1024  # characters in a tensor name or a symbolic axis
MAX_CONTEXT_FRAMES = 1 << 20
MAX_CONSTANT_VALUES = 1 << 16
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")

Check = Callable[[Any, str, list[str]], None]


@dataclass(frozen=True)
class Rule:
    """One field: its check, whether it must be present, and the fix to print when it is wrong."""

    check: Check
    required: bool = True


def _show(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(lo: int, hi: int, fix: str) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if not _is_int(value) or not lo <= value <= hi:
            out.append(f"{path}: got {_show(value)}, expected an int in [{lo}, {hi}]; fix: {fix}")

    return check


def number(lo: float, hi: float, fix: str, hi_open: bool = False) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and lo <= value and (value < hi if hi_open else value <= hi)
        if not ok:
            bound = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
            out.append(f"{path}: got {_show(value)}, expected a finite number in {bound}; fix: {fix}")

    return check


def string(fix: str, choices: tuple[str, ...] = ()) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if choices:
            if value not in choices or not isinstance(value, str):
                out.append(f"{path}: got {_show(value)}, expected one of {', '.join(choices)}; fix: {fix}")
        elif not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or "\x00" in value:
            out.append(
                f"{path}: got {_show(value)}, expected a non-empty string of at most {MAX_NAME} characters; fix: {fix}"
            )

    return check


def shape(symbols: bool, fix: str) -> Check:
    """A list of axis sizes in [1, MAX_DIM]; with ``symbols``, also names ('batch', 'time', others)."""

    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, list) or len(value) > MAX_RANK:
            out.append(f"{path}: got {_show(value)}, expected a list of at most {MAX_RANK} axes; fix: {fix}")
            return
        for i, d in enumerate(value):
            if symbols and isinstance(d, str) and 0 < len(d) <= 64:
                continue
            if not _is_int(d) or not 1 <= d <= MAX_DIM:
                kind = "an int in [1, 2^31-1]" + (" or a symbol such as 'batch'" if symbols else "")
                out.append(f"{path}[{i}]: got {_show(d)}, expected {kind}; fix: {fix}")

    return check


def list_of(item: Check, lo: int, fix: str) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, list) or not lo <= len(value) <= MAX_ENTRIES:
            out.append(f"{path}: got {_show(value)}, expected a list of {lo} to {MAX_ENTRIES} entries; fix: {fix}")
            return
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]", out)

    return check


def obj(table: str) -> Check:
    """A nested object checked against ``SCHEMA[table]``."""

    def check(value: Any, path: str, out: list[str]) -> None:
        out.extend(problems(SCHEMA[table], value, path))

    return check


def optional(inner: Check) -> Check:
    """``null`` or what ``inner`` accepts."""

    def check(value: Any, path: str, out: list[str]) -> None:
        if value is not None:
            inner(value, path, out)

    return check


def json_object(fix: str) -> Check:
    """A free-form JSON object (task facts, provenance): keys strings, any JSON values."""

    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, Mapping):
            out.append(f"{path}: got {_show(value)}, expected a JSON object; fix: {fix}")

    return check


def constant_value(value: Any, path: str, out: list[str]) -> None:
    """A number, a bool, or nested lists of them, at most MAX_CONSTANT_VALUES values in all."""
    count = 0
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, list):
            todo.extend(v)
            continue
        count += 1
        ok = isinstance(v, (bool, int, float)) and (not isinstance(v, float) or math.isfinite(v))
        if not ok or count > MAX_CONSTANT_VALUES:
            why = f"a value {_show(v)}" if not ok else f"more than {MAX_CONSTANT_VALUES} values"
            out.append(
                f"{path}: holds {why}; expected finite numbers or bools (nested lists allowed, "
                f"at most {MAX_CONSTANT_VALUES}); fix: write the constant's values as numbers"
            )
            return


NAME = "the tensor's name in the graph, e.g. 'x'"
DTYPE_FIX = f"one of {', '.join(DTYPES)}"

SCHEMA: dict[str, dict[str, Rule]] = {
    "spec": {
        "version": Rule(integer(1, 3, "3 (versions 1 and 2, without 'window' / 'memory', are read too)")),
        "inputs": Rule(list_of(obj("tensor"), 1, "at least one streamed input, e.g. [{'name': 'x', ...}]")),
        "outputs": Rule(list_of(obj("tensor"), 1, "at least one output, e.g. [{'name': 'y', ...}]")),
        "states": Rule(list_of(obj("state"), 0, "a list of state pairs, [] for none")),
        "constants": Rule(list_of(obj("constant"), 0, "a list of constant inputs, [] for none"), required=False),
        "context": Rule(optional(obj("context")), required=False),
        "model": Rule(optional(obj("model")), required=False),
        "task": Rule(json_object("a JSON object of the task's facts, {} for none"), required=False),
        "provenance": Rule(json_object("a JSON object, {} for none"), required=False),
        "window": Rule(optional(integer(1, 1 << 24, "items of the time axis per call, e.g. 512; null for any")),
                       required=False),  # fmt: skip
        "memory": Rule(list_of(obj("memory"), 0, "a list of per-stream memory inputs, [] for none"), required=False),
    },
    "tensor": {
        "name": Rule(string(NAME)),
        "dtype": Rule(string(DTYPE_FIX, DTYPES)),
        "shape": Rule(shape(True, "sizes >= 1 and the symbols 'batch' / 'time', e.g. ['batch', 'time', 3]")),
    },
    "state": {
        "input": Rule(string("the graph input that takes the state, e.g. 'h'")),
        "output": Rule(string("the graph output that returns it, e.g. 'h_out'")),
        "dtype": Rule(string(DTYPE_FIX, DTYPES)),
        "shape": Rule(shape(True, "sizes >= 1 and 'batch' once, e.g. [1, 'batch', 64]")),
        "init": Rule(number(-3.4e38, 3.4e38, "the state's initial value, e.g. 0.0"), required=False),
    },
    "constant": {
        "name": Rule(string(NAME)),
        "dtype": Rule(string(DTYPE_FIX, DTYPES)),
        "value": Rule(constant_value),
        "shape": Rule(shape(False, "ints >= 1, [] for a scalar"), required=False),
    },
    "memory": {
        "name": Rule(string("the graph input that takes the memory, e.g. 'enc'")),
        "dtype": Rule(string(DTYPE_FIX, DTYPES)),
        "shape": Rule(shape(True, "sizes >= 1, 'batch' once and one length symbol, e.g. ['batch', 'src_len', 256]")),
        "max_length": Rule(optional(integer(1, 1 << 24, "the longest memory a stream may hold, e.g. 256")),
                           required=False),  # fmt: skip
        "mask": Rule(optional(string("the float32 graph input [batch, length] of 1.0 / 0.0, e.g. 'enc_mask'")),
                     required=False),  # fmt: skip
    },
    "context": {
        "input": Rule(string("the streamed input whose last frames are carried, e.g. 'x'")),
        "frames": Rule(integer(1, MAX_CONTEXT_FRAMES, "a whole number of frames, e.g. 1")),
    },
    "model": {
        "cell": Rule(string("rnn, gru, lstm or attention", ("rnn", "gru", "lstm", "attention"))),
        "input_kind": Rule(string("tokens or frames", ("tokens", "frames"))),
        "input_size": Rule(integer(1, MAX_DIM, "the vocabulary size or feature count")),
        "hidden_size": Rule(integer(1, MAX_DIM, "the hidden width, e.g. 256")),
        "num_layers": Rule(integer(1, 1024, "the number of stacked layers, e.g. 1")),
        "output_size": Rule(integer(1, MAX_DIM, "the output width")),
        "dropout": Rule(number(0.0, 1.0, "a probability in [0, 1), e.g. 0.0", hi_open=True), required=False),
        "embed_size": Rule(integer(0, MAX_DIM, "the embedding width, 0 for none"), required=False),
        "window": Rule(integer(0, MAX_DIM, "attention: positions each token sees, e.g. 64"), required=False),
        "heads": Rule(integer(0, 1024, "attention: heads, e.g. 4"), required=False),
    },
}


def problems(table: Mapping[str, Rule], raw: Any, path: str) -> list[str]:
    """Every way ``raw`` differs from ``table``: unknown, missing and wrong fields, with fixes."""
    here = path or "the document"
    if not isinstance(raw, Mapping):
        return [f"{here}: got {_show(raw)}, expected a JSON object with fields {sorted(table)}"]
    out: list[str] = []
    unknown = sorted(str(k) for k in raw if k not in table)
    if unknown:
        out.append(f"{here}: unknown field(s) {unknown}; valid: {sorted(table)}; fix: remove them")
    for name, rule in table.items():
        where = f"{path}.{name}" if path else name
        if name not in raw:
            if rule.required:
                out.append(f"{where}: missing; fix: add it")
            continue
        rule.check(raw[name], where, out)
    return out


def validate(raw: Any, table: str = "spec", what: str = "stream spec") -> None:
    """SpecError listing every field of ``raw`` that breaks ``SCHEMA[table]``; nothing when it fits.

    The error names each field by its JSON path (``states[0].init``), what came, what was
    expected and the fix, all of them at once.
    """
    found = problems(SCHEMA[table], raw, "")
    if len(found) == 1:
        raise SpecError(f"{what}: {found[0]}")
    if found:
        raise SpecError(f"{what}: {len(found)} fields are wrong:\n  " + "\n  ".join(found))


def json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in ``text`` (brackets inside strings are not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load_json(text: Any, what: str) -> Any:
    """``json.loads`` of ``text`` after a depth check; SpecError for anything but bounded JSON."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{what} is not UTF-8 text: {exc.reason}") from None
    if not isinstance(text, str):
        raise SpecError(f"{what} must be JSON text, got {type(text).__name__}")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise SpecError(f"{what} nests {depth} levels deep, above the limit of {MAX_JSON_DEPTH}: refused")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an int of too many digits
        raise SpecError(f"{what} is not valid JSON: {exc}") from None
