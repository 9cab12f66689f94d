"""Reading accelerometer recordings: MATLAB 5 .mat (written here byte by byte, both byte
orders, compressed or not), .wav and one-column .csv; every bad file is a ConfigError, never
another exception."""

from __future__ import annotations

import contextlib
import importlib.util
import struct
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.edge.vibration.signals import (
    drive_end_channel,
    mat_variables,
    parse_csv_column,
    parse_wav,
    read_signal,
)
from prognos.errors import ConfigError
from tests.conftest import SHARED_DATA

MI_INT8, MI_UINT16, MI_INT32, MI_UINT32, MI_DOUBLE, MI_MATRIX, MI_COMPRESSED = 1, 4, 5, 6, 9, 14, 15
MX_CHAR, MX_DOUBLE, MX_UINT16 = 4, 6, 11


def element(kind: int, payload: bytes, order: str = "<") -> bytes:
    if len(payload) <= 4 and kind != MI_MATRIX:  # the small format, as MATLAB writes short names
        return struct.pack(order + "I", (len(payload) << 16) | kind) + payload.ljust(4, b"\0")
    return struct.pack(order + "II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def matrix(name: str, values: np.ndarray, *, mx_class: int = MX_DOUBLE, order: str = "<") -> bytes:
    values = np.atleast_2d(values)
    data_type = {MX_DOUBLE: (MI_DOUBLE, "f8"), MX_UINT16: (MI_UINT16, "u2"), MX_CHAR: (MI_UINT16, "u2")}
    kind, dtype = data_type[mx_class]
    body = (
        element(MI_UINT32, struct.pack(order + "II", mx_class, 0), order)
        + element(MI_INT32, struct.pack(order + "ii", *values.shape), order)
        + element(MI_INT8, name.encode(), order)
        + element(kind, values.astype(order + dtype).tobytes(order="F"), order)
    )
    return element(MI_MATRIX, body, order)


def mat_file(*matrices: bytes, order: str = "<", compress: bool = False) -> bytes:
    header = b"MATLAB 5.0 MAT-file, Platform: test".ljust(116, b" ") + b"\0" * 8
    header += struct.pack(order + "H", 0x0100) + (b"IM" if order == "<" else b"MI")
    if compress:
        matrices = tuple(
            struct.pack(order + "II", MI_COMPRESSED, len(c)) + c for c in (zlib.compress(m) for m in matrices)
        )
    return header + b"".join(matrices)


def cwru_like(order: str = "<", compress: bool = False) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(1)
    drive_end = rng.normal(size=(500, 1))
    data = mat_file(
        matrix("X105_DE_time", drive_end, order=order),
        matrix("X105_FE_time", rng.normal(size=(500, 1)), order=order),
        matrix("X105RPM", np.array([[1797]]), mx_class=MX_UINT16, order=order),
        matrix("rpm", np.array([[1797]]), mx_class=MX_UINT16, order=order),
        matrix("note", np.array([[ord(c) for c in "test"]]), mx_class=MX_CHAR, order=order),
        order=order,
        compress=compress,
    )
    return data, drive_end.ravel()


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_mat_variables_of_both_byte_orders_compressed_or_not(order: str, compress: bool) -> None:
    data, drive_end = cwru_like(order, compress)
    variables = mat_variables(data)
    assert set(variables) == {"X105_DE_time", "X105_FE_time", "X105RPM", "rpm"}  # text left out
    np.testing.assert_array_equal(variables["X105_DE_time"], drive_end)
    assert variables["X105RPM"].tolist() == [1797.0]
    signal = drive_end_channel(variables)
    assert signal.channel == "X105_DE_time"
    assert signal.rate_hz is None


def test_a_matrix_keeps_its_shape_in_column_order() -> None:
    values = np.arange(6.0).reshape(2, 3)
    assert mat_variables(mat_file(matrix("m", values)))["m"].tolist() == values.tolist()


def test_the_only_vector_is_the_channel_when_none_is_named_drive_end() -> None:
    signal = drive_end_channel(mat_variables(mat_file(matrix("accel", np.ones((10, 1))))))
    assert signal.channel == "accel"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not a mat file at all", "not a MATLAB 5 MAT-file"),
        (b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b"\0"), "MATLAB 7.3 (HDF5)"),
        (cwru_like()[0][:-100], "truncated"),
        (
            mat_file(matrix("a", np.ones((5, 1))), matrix("b", np.ones((5, 1)))),
            "no numeric variable named *_DE_time",
        ),
        (
            mat_file(matrix("X1_DE_time", np.ones((5, 1))), matrix("X2_DE_time", np.ones((5, 1)))),
            "more than one",
        ),
        (mat_file(struct.pack("<II", MI_COMPRESSED, 8) + b"garbage!"), "does not inflate"),
    ],
)
def test_bad_mat_files(data: bytes, message: str) -> None:
    with pytest.raises(
        ConfigError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")
    ):
        drive_end_channel(mat_variables(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_a_mat_header_raise_only_config_error(tail: bytes) -> None:
    with contextlib.suppress(ConfigError):
        mat_variables(mat_file() + tail)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=128, max_value=2000), st.integers(min_value=0, max_value=255))
def test_a_corrupted_mat_file_raises_only_config_error(position: int, value: int) -> None:
    data = bytearray(cwru_like(compress=position % 2 == 0)[0])
    data[position % len(data)] = value
    with contextlib.suppress(ConfigError):
        drive_end_channel(mat_variables(bytes(data)))


def write_wav(path: Path, samples: np.ndarray, *, rate: int, width: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        if width == 1:
            raw = (np.round(samples * 127) + 128).astype(np.uint8).tobytes()
        elif width == 3:
            ints = np.round(samples * (2**23 - 1)).astype("<i4")
            raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
        else:
            raw = np.round(samples * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes()
        file.writeframes(raw)
    return path


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_wav_as_fraction_of_full_scale(tmp_path: Path, width: int) -> None:
    samples = np.sin(np.linspace(0, 20, 1000)) * 0.9
    signal = read_signal(write_wav(tmp_path / "a.wav", samples, rate=12_000, width=width))
    assert signal.rate_hz == 12_000.0
    np.testing.assert_allclose(signal.samples, samples, atol=2.0 / 2 ** (8 * width - 1))


def float_wav(samples: np.ndarray, *, rate: int = 25_600, bits: int = 32, extensible: bool = False) -> bytes:
    data = samples.astype(f"<f{bits // 8}").tobytes()
    tag = 0xFFFE if extensible else 3
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * bits // 8, bits // 8, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", 3) + bytes(14)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("bits, extensible", [(32, False), (64, False), (32, True)])
def test_float_wav(bits: int, extensible: bool) -> None:
    samples = np.random.default_rng(2).normal(size=300)
    signal = parse_wav(float_wav(samples, bits=bits, extensible=extensible))
    assert signal.rate_hz == 25_600.0
    np.testing.assert_allclose(signal.samples, samples, rtol=1e-6)


def test_bad_wav_files(tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "s.wav", np.zeros(200), rate=12_000, width=2, channels=2)
    with pytest.raises(ConfigError, match="2 channels; expected one"):
        read_signal(stereo)
    with pytest.raises(ConfigError, match="no RIFF/WAVE header"):
        parse_wav(b"RIFX0000WAVE")
    with pytest.raises(ConfigError, match="no fmt and data chunks"):
        parse_wav(b"RIFF\x04\x00\x00\x00WAVE")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_wave_bytes_raise_only_config_error(tail: bytes) -> None:
    with contextlib.suppress(ConfigError):
        parse_wav(b"RIFF\x00\x00\x00\x00WAVE" + tail)


def test_csv_column_with_or_without_header() -> None:
    assert parse_csv_column(b"accel_g\n0.5\n-1e-3\n\n2\n").samples.tolist() == [0.5, -0.001, 2.0]
    assert parse_csv_column(b"\xef\xbb\xbf1\n2\n").channel == "column 1"
    assert parse_csv_column(b"accel_g\n1\n").channel == "accel_g"


@pytest.mark.parametrize(
    "text, message",
    [
        (b"time,accel\n0,1\n", "line 1 has 2 columns; expected one"),
        (b"1\n2\nthree\n", "line 3: 'three' is not a number"),
        (b"1\nnan\n", "line 2: 'nan' is not a finite number"),
        (b"\xff\xfe1\n", "not a UTF-8 text file"),
    ],
)
def test_bad_csv_files(text: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_csv_column(text)


def test_read_signal_names_the_file_in_every_error(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("accel\n")
    (tmp_path / "a.txt").write_text("1\n")
    for path, message in [
        (tmp_path / "empty.csv", "holds no samples"),
        (tmp_path / "a.txt", "unsupported file type '.txt'; expected .mat, .csv or .wav"),
        (tmp_path / "missing.mat", "no such file"),
    ]:
        with pytest.raises(ConfigError) as info:
            read_signal(path)
        assert str(info.value).startswith(f"{path}: ")
        assert message in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy is not installed")
@pytest.mark.skipif(not (SHARED_DATA / "cwru").is_dir(), reason="../shared/data/cwru is missing")
def test_cwru_files_read_as_scipy_reads_them() -> None:
    from scipy.io import loadmat

    for path in sorted((SHARED_DATA / "cwru").glob("*.mat")):
        ours = mat_variables(path.read_bytes())
        theirs = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        assert set(ours) == set(theirs)
        for name, values in theirs.items():
            np.testing.assert_array_equal(ours[name], np.asarray(values, dtype=np.float64).ravel())
