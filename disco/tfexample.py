"""``tf.train.Example`` in protobuf wire format, written and read without TensorFlow.

The resample and augment steps handle a few hundred kilobytes of PCM per clip and no tensors;
importing TensorFlow only to build Example protos cost them ~4 s per process, longer than
resampling a few hundred clips on two cores. The format is small and stable (example.proto and
feature.proto have not changed since TF 1.0), so we encode it directly; TensorFlow's parsers read
the result (tests check both directions against ``tf.train.Example``).

Example   { Features features = 1; }
Features  { map<string, Feature> feature = 1; }
Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
BytesList { repeated bytes value = 1; }
FloatList { repeated float value = 1 [packed = true]; }
Int64List { repeated int64 value = 1 [packed = true]; }
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from disco.errors import SchemaError

BYTES, FLOAT, INT64 = "bytes_list", "float_list", "int64_list"
_KIND_FIELD = {BYTES: 1, FLOAT: 2, INT64: 3}
_FIELD_KIND = {v: k for k, v in _KIND_FIELD.items()}
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

Value = bytes | float | int


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | _LEN) + _varint(len(payload)) + payload


def _feature(kind: str, values) -> bytes:
    if kind == BYTES:
        inner = b"".join(_len_field(1, bytes(v)) for v in values)
    elif kind == FLOAT:
        inner = _len_field(1, np.asarray(values, dtype="<f4").tobytes()) if len(values) else b""
    elif kind == INT64:
        inner = _len_field(1, b"".join(_varint(int(v)) for v in values)) if len(values) else b""
    else:
        raise SchemaError(f"unknown feature kind {kind!r}")
    return _len_field(_KIND_FIELD[kind], inner)


def encode_example(features: Mapping[str, tuple[str, Iterable]]) -> bytes:
    """``{name: (kind, values)}`` with kind one of BYTES, FLOAT, INT64 → serialized Example."""
    entries = b"".join(
        _len_field(1, _len_field(1, name.encode()) + _len_field(2, _feature(kind, list(values))))
        for name, (kind, values) in features.items()
    )
    return _len_field(1, entries)


class _Reader:
    def __init__(self, data: bytes | memoryview):
        self.buf = memoryview(data)
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.buf)

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.buf):
                raise SchemaError("truncated varint")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise SchemaError("varint longer than 10 bytes")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise SchemaError(f"field of {n} bytes runs past the end of its message")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def fields(self) -> Iterator[tuple[int, int, object]]:
        """(field number, wire type, value): memoryview for LEN, int for VARINT, raw bytes for fixed."""
        while not self.done():
            tag = self.varint()
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise SchemaError("field number 0")
            if wire == _VARINT:
                yield field, wire, self.varint()
            elif wire == _LEN:
                yield field, wire, self.take(self.varint())
            elif wire == _I64:
                yield field, wire, self.take(8)
            elif wire == _I32:
                yield field, wire, self.take(4)
            else:
                raise SchemaError(f"unsupported wire type {wire}")


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _decode_values(kind: str, data: memoryview) -> list | np.ndarray:
    bytes_out: list[bytes] = []
    floats: list[np.ndarray] = []
    ints: list[int] = []
    for field, wire, value in _Reader(data).fields():
        if field != 1:
            continue  # unknown fields are skipped, as protobuf does
        if kind == BYTES and wire == _LEN:
            bytes_out.append(bytes(value))
        elif kind == FLOAT and wire == _LEN:
            if len(value) % 4:
                raise SchemaError("packed float list length is not a multiple of 4")
            floats.append(np.frombuffer(value, dtype="<f4"))
        elif kind == FLOAT and wire == _I32:
            floats.append(np.frombuffer(value, dtype="<f4"))
        elif kind == INT64 and wire == _LEN:
            packed = _Reader(value)
            while not packed.done():
                ints.append(_signed(packed.varint()))
        elif kind == INT64 and wire == _VARINT:
            ints.append(_signed(value))
        else:
            raise SchemaError(f"{kind} value with wire type {wire}")
    if kind == BYTES:
        return bytes_out
    if kind == FLOAT:
        return np.concatenate(floats).astype(np.float32) if floats else np.zeros(0, np.float32)
    return ints


def decode_example(data: bytes) -> dict[str, tuple[str, list | np.ndarray]]:
    """Serialized Example → ``{name: (kind, values)}``; SchemaError on anything malformed."""
    out: dict[str, tuple[str, list | np.ndarray]] = {}
    try:
        for field, wire, features in _Reader(data).fields():
            if field != 1 or wire != _LEN:
                continue
            for f2, w2, entry in _Reader(features).fields():
                if f2 != 1 or w2 != _LEN:
                    continue
                name, feature = "", None
                for f3, w3, value in _Reader(entry).fields():
                    if f3 == 1 and w3 == _LEN:
                        name = bytes(value).decode("utf-8")
                    elif f3 == 2 and w3 == _LEN:
                        feature = value
                kind, values = None, []
                if feature is not None:
                    for f4, w4, inner in _Reader(feature).fields():
                        if f4 in _FIELD_KIND and w4 == _LEN:
                            kind, values = _FIELD_KIND[f4], _decode_values(_FIELD_KIND[f4], inner)
                out[name] = (kind or BYTES, values)
    except (SchemaError, UnicodeDecodeError) as exc:
        raise SchemaError(f"record is not a tf.train.Example ({len(data)} bytes): {exc}") from exc
    if not out and len(data):
        raise SchemaError(f"record is not a tf.train.Example ({len(data)} bytes): no features")
    return out
