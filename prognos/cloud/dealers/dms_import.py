"""Import DMS exports into InfluxDB: every row of every file is checked first; one bad row in
any file and nothing is written.

Points have deterministic keys (prognos.cloud.dealers.dms.point_time_ns), so importing a file again overwrites
its points instead of adding to them. If the database fails during the write, some batches may
be stored and others not; running the same import again completes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prognos.cloud.dealers.dms import decode_table, point_line, validate
from prognos.cloud.dealers.kinds import PRECISION, Checked, Kind, detect_kind, kind_named
from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.cloud.storage.writer import InfluxWriter
from prognos.errors import ConfigError, RejectedError, TransientError

log = logging.getLogger(__name__)

BATCH_LINES = 5000
WRITE_ATTEMPTS = 5  # tries of each batch before the import stops (running it again completes it)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 10.0
DEFAULT_MAX_SHOWN = 20


class ProgressBar(Protocol):
    """What the importer needs of a progress bar (a tqdm bar has both)."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], ProgressBar]


class _NoBar:
    def update(self, n: int = 1) -> object:
        return None

    def close(self) -> None:
        return None


def no_progress(description: str, total: int) -> ProgressBar:
    return _NoBar()


class RejectedFilesError(ConfigError):
    """Some rows of the given files are bad; nothing was written. The message lists the first
    `max_shown` problems, with file and line, and counts the rest."""

    def __init__(self, checked: Sequence[Checked], max_shown: int = DEFAULT_MAX_SHOWN) -> None:
        self.checked = tuple(checked)
        bad = [c for c in checked if c.problems]
        total = sum(len(c.problems) for c in bad)
        lines = [
            f"{total} bad row{'s' if total != 1 else ''} in {len(bad)} of {len(checked)} "
            f"file{'s' if len(checked) != 1 else ''}; nothing was imported"
        ]
        shown = 0
        for c in bad:
            lines.append(f"{c.name} ({c.kind.name}): {len(c.problems)} bad of {c.rows} rows")
            for problem in c.problems:
                if shown >= max_shown:
                    break
                lines.append(f"  {problem}")
                shown += 1
        if total > shown:
            lines.append(f"  ... and {total - shown} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class FileSummary:
    path: Path
    kind: str
    rows: int
    ignored_columns: tuple[str, ...]


@dataclass(frozen=True)
class ImportSummary:
    database: str
    files: tuple[FileSummary, ...]
    points: int


def read_file(path: Path, kind: str | None = None) -> Checked:
    """Read and validate one file; ConfigError if it cannot be read or its kind is unknown.
    Bad rows do not raise: they are in the result's `problems`."""
    return _check(path, kind, no_progress)


def _check(path: Path, kind: str | None, progress: ProgressFactory) -> Checked:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    table = decode_table(data, str(path))
    chosen = kind_named(kind) if kind else detect_kind(table.columns, str(path))
    bar = progress(f"checking {path.name}", len(table.rows))
    try:
        return validate(table, chosen, bar.update)
    finally:
        bar.close()


def check_files(
    paths: Sequence[Path], *, kind: str | None = None, progress: ProgressFactory = no_progress
) -> list[Checked]:
    """Validate every file; ConfigError at the first one that cannot be read at all."""
    if not paths:
        raise ConfigError("no files given")
    return [_check(path, kind, progress) for path in paths]


def import_files(
    influx: InfluxClient,
    database: str,
    paths: Sequence[Path],
    *,
    kind: str | None = None,
    max_shown: int = DEFAULT_MAX_SHOWN,
    batch_lines: int = BATCH_LINES,
    progress: ProgressFactory = no_progress,
) -> ImportSummary:
    """Check every file, then write them all, or nothing when any row is bad
    (RejectedFilesError). Creates the database if needed."""
    checked = check_files(paths, kind=kind, progress=progress)
    if any(not c.ok for c in checked):
        raise RejectedFilesError(checked, max_shown)
    return write_checked(influx, database, checked, batch_lines=batch_lines, progress=progress)


def write_checked(
    influx: InfluxClient,
    database: str,
    checked: Sequence[Checked],
    *,
    batch_lines: int = BATCH_LINES,
    progress: ProgressFactory = no_progress,
) -> ImportSummary:
    """Write files that check_files found good; RejectedFilesError if any is not."""
    if any(not c.ok for c in checked):
        raise RejectedFilesError(checked)
    lines = [point_line(c.kind, record) for c in checked for record in c.records]
    influx.ensure_database(database)
    check_field_types(influx, database, {c.kind.name: c.kind for c in checked}.values())
    bar = progress("writing points", len(lines))
    try:
        _write_all(influx, database, lines, batch_lines, bar)
    finally:
        bar.close()
    files = tuple(FileSummary(Path(c.name), c.kind.name, len(c.records), c.ignored_columns) for c in checked)
    log.debug("imported %d points from %d files into %s", len(lines), len(files), database)
    return ImportSummary(database, files, len(lines))


def check_field_types(influx: InfluxClient, database: str, kinds: Iterable[Kind]) -> None:
    """Refuse, before anything is written, a field whose type in the database differs from ours:
    InfluxDB would drop those points (a partial write) and keep the others."""
    conflicts = []
    for kind in kinds:
        expected = kind.measurement.fields
        series = influx.query(f"SHOW FIELD KEYS FROM {quote_identifier(kind.name)}", database=database)
        for row in (row for s in series for row in s.rows()):
            key, stored = str(row.get("fieldKey")), row.get("fieldType")
            if key in expected and stored != expected[key]:
                conflicts.append(f"{kind.name}.{key} is {stored} in the database, {expected[key]} here")
    if conflicts:
        raise ConfigError(
            f"database {database!r} holds fields of another type ({'; '.join(conflicts)}); "
            "nothing was imported"
        )


def _write_all(
    influx: InfluxClient, database: str, lines: list[str], batch_lines: int, bar: ProgressBar
) -> None:
    writer = InfluxWriter(
        client=influx,
        database=database,
        batch_lines=batch_lines,
        attempts=WRITE_ATTEMPTS,
        backoff_base_s=BACKOFF_BASE_S,
        backoff_cap_s=BACKOFF_CAP_S,
    )
    written = 0

    def done(count: int) -> None:
        nonlocal written
        written += count
        bar.update(count)

    try:
        writer.write(lines, precision=PRECISION, progress=done)
    except (TransientError, RejectedError) as exc:
        raise type(exc)(
            f"{exc}; {written} of {len(lines)} points were written. Importing the same files "
            "again is safe: points overwrite themselves"
        ) from exc
