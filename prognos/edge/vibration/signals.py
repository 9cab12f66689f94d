"""Accelerometer recordings from files: MATLAB 5 .mat (the drive-end channel), one-column .csv
and .wav. Each format has a pure parser of bytes or text and `read_signal` puts them behind one
call; every problem with a file is a ConfigError with one line that names it.

.mat: MATLAB's level 5 format (what MATLAB writes by default, v6 and v7, compressed or not),
read here rather than with scipy so that a gateway needs only numpy. The channel is the one
numeric variable whose name ends in DRIVE_END_SUFFIX (the CWRU convention, X105_DE_time), or
the only numeric vector in the file. v7.3 files are HDF5 and are refused with what to do.

.wav: PCM (8, 16, 24 or 32 bit, as a fraction of full scale) or IEEE float (32 or 64 bit), one
channel; the file states its rate.

.csv: one number per line; a first line that is not a number is taken as the header.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prognos.edge.features import FloatArray
from prognos.errors import ConfigError

DRIVE_END_SUFFIX = "_DE_time"
SUFFIXES = (".mat", ".csv", ".wav")
MAX_DECOMPRESSED_BYTES = 1 << 30

# MAT level 5 data types -> numpy dtypes (without byte order)
_MAT_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_INT8, _MI_UINT32, _MI_INT32, _MI_MATRIX, _MI_COMPRESSED = 1, 6, 5, 14, 15
_NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS .. mxUINT64_CLASS
_COMPLEX_FLAG = 0x0800


@dataclass(frozen=True)
class Signal:
    samples: FloatArray
    rate_hz: float | None  # None where the file does not say (.mat, .csv)
    channel: str  # what was read: the variable, "column 1", "channel 1"


def read_signal(path: Path) -> Signal:
    """The recording in `path`, by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; expected .mat, .csv or .wav"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        if suffix == ".mat":
            signal = drive_end_channel(mat_variables(data))
        elif suffix == ".wav":
            signal = parse_wav(data)
        else:
            signal = parse_csv_column(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if len(signal.samples) == 0:
        raise ConfigError(f"{path}: holds no samples")
    if not np.isfinite(signal.samples).all():
        raise ConfigError(f"{path}: {signal.channel} holds NaN or infinite samples")
    return signal


def drive_end_channel(variables: dict[str, FloatArray]) -> Signal:
    """The drive-end accelerometer of a .mat file's numeric variables."""
    vectors = {name: values for name, values in variables.items() if values.ndim == 1 and values.size > 1}
    drive_end = [name for name in vectors if name.endswith(DRIVE_END_SUFFIX)]
    if len(drive_end) == 1:
        return Signal(vectors[drive_end[0]], None, drive_end[0])
    if len(drive_end) > 1:
        raise ConfigError(f"more than one drive-end channel: {', '.join(sorted(drive_end))}")
    if len(vectors) == 1:
        name, values = next(iter(vectors.items()))
        return Signal(values, None, name)
    listed = ", ".join(sorted(variables)) or "none"
    raise ConfigError(f"no numeric variable named *{DRIVE_END_SUFFIX} (variables: {listed})")


def mat_variables(data: bytes) -> dict[str, FloatArray]:
    """Every real numeric variable of a MATLAB level 5 MAT-file, as float64, vectors flattened
    (an (n, 1) or (1, n) array is a vector of n); other classes (cells, structs, text, sparse,
    complex) are left out."""
    if data[:10] == b"MATLAB 7.3":
        raise ConfigError(
            "a MATLAB 7.3 (HDF5) MAT-file; save it with save(..., '-v7') or export the channel as CSV"
        )
    if len(data) < 128 or data[:19] != b"MATLAB 5.0 MAT-file":
        raise ConfigError("not a MATLAB 5 MAT-file (no 'MATLAB 5.0 MAT-file' header)")
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        raise ConfigError("not a MATLAB 5 MAT-file (no byte-order mark in the header)")
    variables: dict[str, FloatArray] = {}
    _read_elements(data, 128, order, variables, depth=0)
    return variables


def _read_elements(data: bytes, position: int, order: str, out: dict[str, FloatArray], depth: int) -> None:
    while position + 8 <= len(data):
        kind, payload, position = _element(data, position, order)
        if kind == _MI_COMPRESSED and depth == 0:
            _read_elements(_inflate(payload), 0, order, out, depth=1)
        elif kind == _MI_MATRIX:
            named = _matrix(payload, order)
            if named is not None:
                out[named[0]] = named[1]
    if position != len(data) and any(data[position:]):
        raise ConfigError("truncated: the file ends inside a data element")


def _element(data: bytes, position: int, order: str) -> tuple[int, bytes, int]:
    """(type, payload, position of the next element) of the data element at `position`."""
    if position + 8 > len(data):
        raise ConfigError("truncated: the file ends inside a data element")
    first, second = struct.unpack_from(order + "II", data, position)
    if first >> 16:  # small element: type and size share the first word, data the second
        size = first >> 16
        if size > 4:
            raise ConfigError(f"malformed small data element at byte {position}")
        return first & 0xFFFF, data[position + 4 : position + 4 + size], position + 8
    kind, size = first, second
    start = position + 8
    if start + size > len(data):
        raise ConfigError(f"truncated: a data element at byte {position} needs {size} bytes")
    padded = size if kind == _MI_COMPRESSED else size + (-size % 8)
    return kind, data[start : start + size], start + padded


def _inflate(payload: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        raise ConfigError(f"a compressed variable does not inflate ({exc})") from None
    if inflater.unconsumed_tail:
        raise ConfigError(f"a compressed variable inflates beyond {MAX_DECOMPRESSED_BYTES} bytes")
    return data


def _matrix(payload: bytes, order: str) -> tuple[str, FloatArray] | None:
    """(name, values) of a numeric matrix element; None for any other class."""
    if not payload:
        return None
    parts: list[tuple[int, bytes]] = []
    position = 0
    while position + 8 <= len(payload) and len(parts) < 4:
        kind, content, position = _element(payload, position, order)
        parts.append((kind, content))
    if len(parts) < 3 or parts[0][0] != _MI_UINT32 or len(parts[0][1]) < 4 or parts[1][0] != _MI_INT32:
        raise ConfigError("malformed matrix element (array flags and dimensions expected)")
    flags = struct.unpack_from(order + "I", parts[0][1])[0]
    if flags & 0xFF not in _NUMERIC_CLASSES or flags & _COMPLEX_FLAG:
        return None
    if len(parts) < 4 or len(parts[1][1]) % 4:
        raise ConfigError("malformed numeric matrix element")
    dims = struct.unpack(order + f"{len(parts[1][1]) // 4}i", parts[1][1])
    name = parts[2][1].decode("ascii", errors="replace")
    kind, content = parts[3]
    dtype = _MAT_TYPES.get(kind)
    if dtype is None or any(d < 0 for d in dims):
        raise ConfigError(f"variable {name!r}: unsupported data type {kind}")
    itemsize = int(dtype[1])
    count = math.prod(dims)
    if len(content) != count * itemsize:
        raise ConfigError(f"variable {name!r}: {len(content)} bytes of data for dimensions {dims}")
    values = np.frombuffer(content, dtype=order + dtype).astype(np.float64)
    shape = tuple(d for d in dims if d != 1) if sum(d != 1 for d in dims) <= 1 else dims
    return name, values.reshape(shape if shape else (count,), order="F")


def parse_wav(data: bytes) -> Signal:
    """The samples and rate of a one-channel RIFF WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ConfigError("not a WAVE file (no RIFF/WAVE header)")
    position = 12
    fmt: tuple[int, int, int, int] | None = None
    while position + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, position)
        body = data[position + 8 : position + 8 + size]
        if chunk == b"fmt ":
            if len(body) < 16:
                raise ConfigError("malformed fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag heads the GUID
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise ConfigError("the data chunk comes before the fmt chunk")
            return Signal(_wav_samples(body, *fmt), float(fmt[2]), "channel 1")
        position += 8 + size + (size % 2)
    raise ConfigError("no fmt and data chunks")


def _wav_samples(body: bytes, tag: int, channels: int, rate: int, bits: int) -> FloatArray:
    if channels != 1:
        raise ConfigError(f"{channels} channels; expected one (the accelerometer)")
    if rate <= 0:
        raise ConfigError(f"sample rate {rate} Hz")
    width = bits // 8
    if tag == 3 and bits in (32, 64):
        usable = len(body) - len(body) % width
        return np.frombuffer(body[:usable], dtype=f"<f{width}").astype(np.float64)
    if tag != 1 or bits not in (8, 16, 24, 32):
        raise ConfigError(f"unsupported encoding (format {tag}, {bits} bit); expected PCM or IEEE float")
    usable = len(body) - len(body) % width
    raw = np.frombuffer(body[:usable], dtype=np.uint8).reshape(-1, width)
    if bits == 8:  # unsigned, centred on 128
        return (raw[:, 0].astype(np.float64) - 128.0) / 128.0
    if bits == 24:
        padded = np.zeros((len(raw), 4), dtype=np.uint8)
        padded[:, 1:] = raw
        values = padded.view("<i4").ravel() >> 8
    else:
        values = raw.reshape(-1).view(f"<i{width}")
    return values.astype(np.float64) / float(1 << (bits - 1))


def parse_csv_column(data: bytes) -> Signal:
    """One number per line; a first line that is not a number is the header."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file") from None
    values: list[float] = []
    header = ""
    for number, line in enumerate(text.splitlines(), start=1):
        field = line.strip()
        if not field:
            continue
        columns = len([part for part in _split(field) if part.strip()])
        if columns > 1:
            raise ConfigError(f"line {number} has {columns} columns; expected one")
        try:
            value = float(field)
        except ValueError:
            if not values and not header:
                header = field
                continue
            raise ConfigError(f"line {number}: {field[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"line {number}: {field!r} is not a finite number")
        values.append(value)
    return Signal(np.asarray(values, dtype=np.float64), None, header or "column 1")


def _split(field: str) -> list[str]:
    for separator in (",", ";", "\t"):
        if separator in field:
            return field.split(separator)
    return field.split()
