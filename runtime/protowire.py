"""A tiny reader and writer of the protobuf wire format, enough to inspect an ONNX file safely.

The runtime may not import ``onnx``, and must look inside a model before onnxruntime does
(external-data paths, declared tensor sizes, the stream spec). Every read is bounds-checked:
a truncated or foreign buffer raises ``WireError``, never reads past the end.

Example:
    >>> msg = field_bytes(1, b"hi") + field_varint(2, 7)
    >>> [(f.number, f.value if f.wire == VARINT else bytes(f.payload)) for f in iter_fields(msg)]
    [(1, b'hi'), (2, 7)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
MAX_DEPTH = 64  # nested graphs (If / Loop / Scan bodies) deeper than this are refused


class WireError(ValueError):
    """The buffer is not a well-formed protobuf message."""


@dataclass(frozen=True)
class Field:
    """One field of a message: ``value`` is an int (varint / fixed) or the payload bytes."""

    number: int
    wire: int
    value: int | memoryview  # a zero-copy view of the payload for length-delimited fields

    @property
    def payload(self) -> memoryview:
        """The bytes of a length-delimited field; WireError for any other wire type."""
        if not isinstance(self.value, memoryview):
            raise WireError(f"field {self.number}: expected a length-delimited value, got wire type {self.wire}")
        return self.value


Buffer = bytes | memoryview


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")


def iter_fields(buf: Buffer, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """Yield the fields of the message in ``buf[start:end]``; WireError if it is malformed."""
    buf = memoryview(buf)
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos}")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield Field(number, wire, value)
        elif wire == BYTES:
            size, pos = read_varint(buf, pos, end)
            if size > end - pos:
                raise WireError(f"field {number}: {size} bytes declared at byte {pos}, only {end - pos} left")
            yield Field(number, wire, buf[pos : pos + size])
            pos += size
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if width > end - pos:
                raise WireError(f"field {number}: truncated fixed{width * 8} at byte {pos}")
            yield Field(number, wire, int.from_bytes(buf[pos : pos + width], "little"))
            pos += width
        else:
            raise WireError(f"field {number}: wire type {wire} is not valid (groups are not used by ONNX)")


def signed64(value: int) -> int:
    """A varint read as int64 (two's complement)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def repeated_ints(fields: list[Field], number: int) -> list[int]:
    """The values of repeated int64 field ``number``, packed or not."""
    out: list[int] = []
    for f in fields:
        if f.number != number:
            continue
        if f.wire == VARINT:
            out.append(signed64(int(f.value)))
        elif f.wire == BYTES:
            data = f.payload
            pos = 0
            while pos < len(data):
                v, pos = read_varint(data, pos, len(data))
                out.append(signed64(v))
        else:
            raise WireError(f"field {number}: expected int64 values, got wire type {f.wire}")
    return out


def text(f: Field) -> str:
    """A string field's value; WireError when it is not UTF-8."""
    try:
        return bytes(f.payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"field {f.number}: string is not UTF-8 ({exc.reason})") from None


def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | VARINT) + encode_varint(value)


def field_bytes(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | BYTES) + encode_varint(len(payload)) + payload


def encode_field(f: Field) -> bytes:
    """Re-encode a field exactly as read."""
    if f.wire == VARINT:
        return field_varint(f.number, int(f.value))
    if f.wire == BYTES:
        return field_bytes(f.number, bytes(f.payload))
    fmt = "<Q" if f.wire == FIXED64 else "<I"
    return encode_varint(f.number << 3 | f.wire) + struct.pack(fmt, int(f.value))
