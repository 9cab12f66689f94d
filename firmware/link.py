"""Sensor-node link codec; runs unchanged on the node (MicroPython) and the gateway (CPython).

This is the codec's one copy: firmware/link.py is a symbolic link to this file, so the node's
folder is complete and the core's contract is the code the node runs.

On the wire a frame is 0x00, the COBS encoding of the frame, 0x00. Decoded, it is

    version u8 | kind u8 | node_id u8 | seq u16 | payload_len u8 | payload | crc u32

little-endian, where crc is binascii.crc32 of every byte before it. The leading 0x00 ends
whatever the line carried before (noise, boot messages, a frame cut short by a reset), so
that cannot spoil the frame; between two frames the decoder sees an empty frame and ignores
it. firmware/README.md documents the layout, both payloads, the channel table and the
decoder's counters.

The file keeps to what both interpreters have: struct and binascii, plain classes, no
typing or dataclasses at run time. Annotations are for mypy on the gateway side; MicroPython
parses and ignores them.
"""

import binascii
import struct

# mypy reads any name TYPE_CHECKING as true and types const() from the first branch; both
# interpreters take the second, where MicroPython's compiler folds const() into the code.
TYPE_CHECKING = False
if TYPE_CHECKING:

    def const(expr: int) -> int:
        return expr

else:
    try:
        from micropython import const
    except ImportError:  # CPython

        def const(expr):
            return expr


VERSION = const(1)
KIND_FEATURES = const(1)
KIND_STATUS = const(2)

HEADER_LEN = const(6)
CRC_LEN = const(4)
MAX_PAYLOAD = const(255)
MAX_RAW = const(265)  # HEADER_LEN + MAX_PAYLOAD + CRC_LEN
# COBS adds one code byte per started block of 254 bytes: two for MAX_RAW bytes.
MAX_ENCODED = const(267)
MAX_WIRE = const(269)  # MAX_ENCODED and the two delimiters
# A features payload: window start u32, count u8, then count (channel u8, value f32) pairs.
MAX_CHANNELS = const(50)  # (MAX_PAYLOAD - 5) // 5
STATUS_LEN = const(21)

_U16 = const(0xFFFF)
_U32 = const(0xFFFFFFFF)
_HEAD = "<BBBHB"
_FEATURES_HEAD = "<IB"
_PAIR = "<Bf"
_STATUS = "<IBIIII"
_INF = float("inf")

# Channels a node reports, one row each: id on the wire, name, unit (as in the signal
# catalog). The catalog maps (node id, channel name) to a VSS path. Ids are never reused.
CHANNELS = (
    (1, "vib_rms", "g"),
    (2, "vib_peak", "g"),
    (3, "vib_crest", "ratio"),
    (4, "vib_kurtosis", "ratio"),
    (5, "vib_defect_db", "dB"),
    (6, "temp_min_c", "celsius"),
    (7, "temp_mean_c", "celsius"),
    (8, "temp_max_c", "celsius"),
    (9, "pressure_kpa", "kPa"),
)
CHANNEL_IDS = {name: channel_id for channel_id, name, _ in CHANNELS}
CHANNEL_NAMES = {channel_id: name for channel_id, name, _ in CHANNELS}

# Why a node last started. The numbers equal the ESP32 port's machine.*_RESET constants, so
# a node there sends machine.reset_cause() as it is.
RESET_CAUSES = (
    (0, "unknown"),
    (1, "power_on"),
    (2, "hard"),
    (3, "watchdog"),
    (4, "deep_sleep"),
    (5, "soft"),
)

# Why the decoder dropped a frame (FrameDecoder.errors counts each).
REASONS = ("cobs", "length", "crc", "version", "kind", "payload", "oversize")


class FrameError(ValueError):
    """Bytes that are not a valid frame; `reason` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Frame:
    """A decoded frame: the node that sent it and the node's sequence number."""

    kind = 0

    def __init__(self, node_id: int, seq: int) -> None:
        self.node_id = node_id
        self.seq = seq

    def as_dict(self) -> dict[str, object]:
        return {"kind": "unknown", "node_id": self.node_id, "seq": self.seq}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.as_dict()!r})"


class FeaturesFrame(Frame):
    """Features of one window: `values` holds (channel id, value) pairs, values as float32."""

    kind = KIND_FEATURES

    def __init__(self, node_id: int, seq: int, window_start_ms: int, values: list[tuple[int, float]]) -> None:
        super().__init__(node_id, seq)
        self.window_start_ms = window_start_ms
        self.values = values

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": "features",
            "node_id": self.node_id,
            "seq": self.seq,
            "window_start_ms": self.window_start_ms,
            "values": [[channel_id, value] for channel_id, value in self.values],
        }


class StatusFrame(Frame):
    """The node's health: boots, why it last started, free heap, uptime, frames sent and dropped."""

    kind = KIND_STATUS

    def __init__(
        self,
        node_id: int,
        seq: int,
        boot_count: int,
        reset_cause: int,
        mem_free: int,
        uptime_s: int,
        frames_sent: int,
        frames_dropped: int,
    ) -> None:
        super().__init__(node_id, seq)
        self.boot_count = boot_count
        self.reset_cause = reset_cause
        self.mem_free = mem_free
        self.uptime_s = uptime_s
        self.frames_sent = frames_sent
        self.frames_dropped = frames_dropped

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": "status",
            "node_id": self.node_id,
            "seq": self.seq,
            "boot_count": self.boot_count,
            "reset_cause": self.reset_cause,
            "mem_free": self.mem_free,
            "uptime_s": self.uptime_s,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
        }


# --- encoding ---------------------------------------------------------------------------------


def encode_features(node_id: int, seq: int, window_start_ms: int, values: list[tuple[int, float]]) -> bytes:
    """One features frame as sent, delimiters included. `seq` and `window_start_ms` are taken modulo
    2**16 and 2**32 (both wrap on the node); a value beyond float32's range is sent as an
    infinity of its sign. ValueError for a node or channel id outside 0-255 or more than
    MAX_CHANNELS values."""
    raw = bytearray(MAX_RAW)
    out = bytearray(MAX_WIRE)
    n = _seal(raw, out, KIND_FEATURES, node_id, seq, _pack_features(raw, window_start_ms, values))
    return bytes(out[:n])


def encode_status(
    node_id: int,
    seq: int,
    *,
    boot_count: int,
    reset_cause: int,
    mem_free: int,
    uptime_s: int,
    frames_sent: int,
    frames_dropped: int,
) -> bytes:
    """One status frame as sent, delimiters included. Counters are taken modulo 2**32; ValueError for a
    node id or reset cause outside 0-255."""
    raw = bytearray(MAX_RAW)
    out = bytearray(MAX_WIRE)
    payload_len = _pack_status(raw, boot_count, reset_cause, mem_free, uptime_s, frames_sent, frames_dropped)
    n = _seal(raw, out, KIND_STATUS, node_id, seq, payload_len)
    return bytes(out[:n])


class FrameEncoder:
    """One node's frames, built in two buffers allocated once; the node's code uses this.

    Each call returns a memoryview of the frame as sent (delimiters included), valid until
    the next call, and advances `seq` (wrapping at 2**16)."""

    def __init__(self, node_id: int) -> None:
        self.node_id = _u8(node_id, "node id")
        self.seq = 0
        self._raw = bytearray(MAX_RAW)
        self._out = bytearray(MAX_WIRE)
        self._view = memoryview(self._out)

    def features(self, window_start_ms: int, values: list[tuple[int, float]]) -> memoryview:
        return self._finish(KIND_FEATURES, _pack_features(self._raw, window_start_ms, values))

    def status(
        self,
        *,
        boot_count: int,
        reset_cause: int,
        mem_free: int,
        uptime_s: int,
        frames_sent: int,
        frames_dropped: int,
    ) -> memoryview:
        payload_len = _pack_status(
            self._raw, boot_count, reset_cause, mem_free, uptime_s, frames_sent, frames_dropped
        )
        return self._finish(KIND_STATUS, payload_len)

    def _finish(self, kind: int, payload_len: int) -> memoryview:
        n = _seal(self._raw, self._out, kind, self.node_id, self.seq, payload_len)
        self.seq = (self.seq + 1) & _U16
        return self._view[:n]


def _u8(value: int, what: str) -> int:
    if not 0 <= value <= 255:
        raise ValueError(what + " must be 0-255")
    return value


def _pack_features(raw: bytearray, window_start_ms: int, values: list[tuple[int, float]]) -> int:
    """Write a features payload after the header; return its length."""
    count = len(values)
    if count > MAX_CHANNELS:
        raise ValueError(f"a frame holds at most {MAX_CHANNELS} values")
    struct.pack_into(_FEATURES_HEAD, raw, HEADER_LEN, window_start_ms & _U32, count)
    offset = HEADER_LEN + 5
    for channel_id, value in values:
        _u8(channel_id, "channel id")
        try:
            struct.pack_into(_PAIR, raw, offset, channel_id, value)
        except OverflowError:  # CPython refuses what rounds to infinity; MicroPython stores it
            struct.pack_into(_PAIR, raw, offset, channel_id, _INF if value > 0 else -_INF)
        offset += 5
    return offset - HEADER_LEN


def _pack_status(
    raw: bytearray,
    boot_count: int,
    reset_cause: int,
    mem_free: int,
    uptime_s: int,
    frames_sent: int,
    frames_dropped: int,
) -> int:
    struct.pack_into(
        _STATUS,
        raw,
        HEADER_LEN,
        boot_count & _U32,
        _u8(reset_cause, "reset cause"),
        mem_free & _U32,
        uptime_s & _U32,
        frames_sent & _U32,
        frames_dropped & _U32,
    )
    return STATUS_LEN


def _seal(raw: bytearray, out: bytearray, kind: int, node_id: int, seq: int, payload_len: int) -> int:
    """Header and CRC around the payload already in `raw`, then into `out` as sent (0x00,
    COBS, 0x00); the number of bytes of `out` used."""
    struct.pack_into(_HEAD, raw, 0, VERSION, kind, _u8(node_id, "node id"), seq & _U16, payload_len)
    end = HEADER_LEN + payload_len
    struct.pack_into("<I", raw, end, binascii.crc32(memoryview(raw)[:end]) & _U32)
    out[0] = 0
    n = _cobs_encode(raw, end + CRC_LEN, out, 1)
    out[n] = 0
    return n + 1


def _cobs_encode(src: bytearray, n: int, dst: bytearray, start: int) -> int:
    """COBS of the first n bytes of `src`, written to `dst` from `start`; returns the index
    after the last byte written. Each block is a code byte (1 + the non-zero bytes that follow
    it) and those bytes; a code below 0xFF also stands for a zero after them."""
    code_at = start  # where the current block's code byte goes
    code = 1
    out = start + 1
    for i in range(n):
        if code == 0xFF:  # 254 non-zero bytes: close the block without a zero
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
        byte = src[i]
        if byte:
            dst[out] = byte
            out += 1
            code += 1
        else:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
    dst[code_at] = code
    return out


# --- decoding ---------------------------------------------------------------------------------


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """The frame in `data`: one COBS-encoded frame, with or without the 0x00 before and after
    it. Raises FrameError (and nothing else) for anything else."""
    start = 1 if len(data) and data[0] == 0 else 0
    end = len(data)
    if end > start and data[end - 1] == 0:
        end -= 1
    if end - start > MAX_ENCODED:
        raise FrameError("oversize")
    for i in range(start, end):
        if data[i] == 0:
            raise FrameError("cobs")
    raw = bytearray(MAX_ENCODED)
    return _parse(raw, _cobs_decode(memoryview(data)[start:end], end - start, raw))


class FrameDecoder:
    """Frames out of a byte stream, fed in chunks of any size.

    A frame ends at each 0x00, so after line noise the decoder is back in step at the next
    delimiter. A frame that fails to decode is counted and skipped, never raised; empty frames
    (0x00 after 0x00) are idle line and not counted. Memory is bounded: a frame longer than
    MAX_ENCODED bytes is dropped up to its delimiter and counted as "oversize".

    Counters: frames_ok (decoded), frames_bad (dropped), bytes_skipped (bytes of dropped
    frames, delimiters not counted), errors (frames_bad by reason, keys REASONS), last_error.
    """

    def __init__(self) -> None:
        self._buf = bytearray(MAX_ENCODED)
        self._view = memoryview(self._buf)
        self._raw = bytearray(MAX_ENCODED)
        self._fill = 0
        self._dropping = False
        self.frames_ok = 0
        self.frames_bad = 0
        self.bytes_skipped = 0
        self.errors = {reason: 0 for reason in REASONS}
        self.last_error = ""

    @property
    def pending(self) -> int:
        """Bytes received since the last delimiter (part of a frame still arriving)."""
        return self._fill

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """The frames that `data` completes, in order."""
        frames: list[Frame] = []
        for byte in data:
            if byte == 0:
                if self._dropping:
                    self._dropping = False
                elif self._fill:
                    self._end_frame(frames)
            elif self._dropping:
                self.bytes_skipped += 1
            elif self._fill == MAX_ENCODED:
                self._reject("oversize", self._fill + 1)
                self._fill = 0
                self._dropping = True
            else:
                self._buf[self._fill] = byte
                self._fill += 1
        return frames

    def _end_frame(self, frames: list[Frame]) -> None:
        n = self._fill
        self._fill = 0
        try:
            frame = _parse(self._raw, _cobs_decode(self._view, n, self._raw))
        except FrameError as exc:
            self._reject(exc.reason, n)
        else:
            self.frames_ok += 1
            frames.append(frame)

    def _reject(self, reason: str, n_bytes: int) -> None:
        self.frames_bad += 1
        self.errors[reason] += 1
        self.bytes_skipped += n_bytes
        self.last_error = reason


def _cobs_decode(src: bytes | bytearray | memoryview, n: int, dst: bytearray) -> int:
    """Decode the first n bytes of `src` (none of them 0x00) into `dst`, which must hold n
    bytes; return the decoded length. FrameError("cobs") where a block runs past the end."""
    i = 0
    out = 0
    while i < n:
        code = src[i]
        end = i + code
        if code == 0 or end > n:
            raise FrameError("cobs")
        dst[out : out + code - 1] = src[i + 1 : end]
        out += code - 1
        i = end
        if code != 0xFF and i < n:
            dst[out] = 0
            out += 1
    return out


def _parse(raw: bytearray, n: int) -> Frame:
    """Check and unpack the n decoded bytes in `raw`. The CRC is checked before the version so
    that a node speaking a newer version is told apart from line noise: every version keeps the
    CRC-32 in the last four bytes."""
    if n < HEADER_LEN + CRC_LEN:
        raise FrameError("length")
    end = n - CRC_LEN
    if binascii.crc32(memoryview(raw)[:end]) & _U32 != struct.unpack_from("<I", raw, end)[0]:
        raise FrameError("crc")
    version, kind, node_id, seq, payload_len = struct.unpack_from(_HEAD, raw, 0)
    if version != VERSION:
        raise FrameError("version")
    if HEADER_LEN + payload_len != end:
        raise FrameError("length")
    if kind == KIND_FEATURES:
        if payload_len < 5:
            raise FrameError("payload")
        window_start_ms, count = struct.unpack_from(_FEATURES_HEAD, raw, HEADER_LEN)
        if payload_len != 5 + 5 * count:
            raise FrameError("payload")
        values = []
        for offset in range(HEADER_LEN + 5, end, 5):
            channel_id, value = struct.unpack_from(_PAIR, raw, offset)
            values.append((channel_id, value))
        return FeaturesFrame(node_id, seq, window_start_ms, values)
    if kind == KIND_STATUS:
        if payload_len != STATUS_LEN:
            raise FrameError("payload")
        boot_count, reset_cause, mem_free, uptime_s, sent, dropped = struct.unpack_from(
            _STATUS, raw, HEADER_LEN
        )
        return StatusFrame(node_id, seq, boot_count, reset_cause, mem_free, uptime_s, sent, dropped)
    raise FrameError("kind")
