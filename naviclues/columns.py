"""numpy <-> pyarrow without pyarrow's Python-object conversion.

`pa.array(...)`, `pa.scalar(...)` and `Array.to_numpy()` go through pyarrow's pandas shim, which
imports pandas (seconds on a busy machine) the first time any of them runs. Scoring moves whole
columns between numpy and Arrow, so it does it through the buffers instead: no copy for numbers,
and pandas is never imported.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def from_numpy(values: np.ndarray) -> pa.Array:
    """A numeric or boolean numpy array as an Arrow array (no nulls)."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)], null_count=0)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)],
                                 null_count=0)


def to_numpy(values: pa.Array | pa.ChunkedArray, fill=None) -> np.ndarray:
    """A numeric or boolean Arrow array as numpy; nulls become `fill` (required when there are any)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if values.null_count:
        if fill is None:
            raise ValueError("to_numpy: the array has nulls and no fill value was given")
        values = pc.fill_null(values, from_numpy(np.array([fill], dtype=_numpy_dtype(values.type)))[0])
    n, offset = len(values), values.offset
    data = values.buffers()[1]
    if pa.types.is_boolean(values.type):
        if n == 0:
            return np.zeros(0, dtype=bool)
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset:offset + n].astype(bool)
    dtype = _numpy_dtype(values.type)
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)


def _numpy_dtype(type_: pa.DataType) -> np.dtype:
    if pa.types.is_boolean(type_):
        return np.dtype(bool)
    return np.dtype(type_.to_pandas_dtype())


def valid(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where `values` is not null."""
    return to_numpy(values.is_valid())


def strings(values: Sequence[str | None]) -> pa.Array:
    """An Arrow string array from Python strings (None → null)."""
    encoded = [b"" if v is None else str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    present = np.array([v is not None for v in values], dtype=bool)
    nulls = int(len(values) - present.sum())
    validity = pa.py_buffer(np.packbits(present, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], null_count=nulls)


def string_scalar(value: str | None) -> pa.Scalar:
    return strings([value])[0]
