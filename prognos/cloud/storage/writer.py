"""The one way points get into InfluxDB: ingest, the analytics job and the DMS import all write
through an InfluxWriter, each with its own retry budget.

- Lines go in batches of at most `batch_lines`, one request each (gzip-compressed by the client).
- 413 (BatchTooLargeError): the batch is halved until it fits; a single line too large raises.
- 429 / 503 (ThrottledError): waits as long as the server's Retry-After says, or backs off when
  it said nothing.
- Other transient failures (unreachable, other 5xx, a login refused): exponential backoff with
  full jitter (prognos.backoff.Backoff), for `attempts` tries, or with `attempts=None` until
  the write succeeds or `stop` is set (WriteStopped).
- 404 database not found: with `create_database`, the database is created and the write tried
  again; otherwise it is a transient failure like the others.
- 400 / 422 (RejectedError): raised at once, never retried. `write_groups` tells which groups of
  lines the server refused and stores the others: ingest's dead letters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from prognos.backoff import Backoff
from prognos.cloud.storage.client import BatchTooLargeError, DatabaseNotFoundError, InfluxClient
from prognos.cloud.storage.measurement import Precision
from prognos.errors import ConfigError, PrognosError, RejectedError, ThrottledError, TransientError

log = logging.getLogger(__name__)

BATCH_LINES = 5000
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0

RetryListener = Callable[[TransientError, float], object]  # a write's failure, the delay before its retry


class WriteStopped(PrognosError):
    """`stop` was set while a write kept failing: what that write held is not stored."""


def _no_listener(error: TransientError, delay_s: float) -> None:
    return None


class InfluxWriter:
    """Writes lines of line protocol to one database of one server; not thread-safe (one per
    writing thread)."""

    def __init__(
        self,
        *,
        client: InfluxClient,
        database: str,
        batch_lines: int = BATCH_LINES,
        attempts: int | None = None,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        stop: threading.Event | None = None,
        create_database: bool = False,
        on_retry: RetryListener = _no_listener,
    ) -> None:
        if batch_lines < 1:
            raise ConfigError(f"batch_lines must be at least 1, not {batch_lines}")
        if attempts is not None and attempts < 1:
            raise ConfigError(f"attempts must be at least 1 (or None: until stopped), not {attempts}")
        # Each retried call draws from a Backoff of its own; this one refuses bad settings now.
        Backoff(base_s=backoff_base_s, cap_s=backoff_cap_s)
        self.client = client
        self.database = database
        self.batch_lines = batch_lines
        self.attempts = attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.create_database = create_database
        self._stop = stop
        self._on_retry = on_retry

    def write(
        self, lines: Sequence[str], *, precision: Precision, progress: Callable[[int], object] | None = None
    ) -> None:
        """Store every line, batch after batch; `progress(n)` after each batch of n lines is
        stored. Raises BatchTooLargeError for a line too large alone, RejectedError for lines
        refused, TransientError once the attempts are spent, WriteStopped; the batches before
        the failing one are stored."""
        for start in range(0, len(lines), self.batch_lines):
            batch = lines[start : start + self.batch_lines]
            self._write_halving(batch, precision)
            if progress is not None:
                progress(len(batch))

    def write_groups(
        self, groups: Sequence[Sequence[str]], *, precision: Precision
    ) -> list[tuple[int, RejectedError]]:
        """Store groups of lines that stand or fall together (the points of one message), in one
        request while the server takes it. Returns the groups it refused, by index in order, with
        why: too large alone (BatchTooLargeError) or refused (400 / 422, found by writing the
        groups of a refused request one by one). Every other group is stored. Transient failures
        are retried as in `write`."""
        return self._write_groups(range(len(groups)), groups, precision)

    def ensure_database(self) -> None:
        """Create the database if it does not exist, retrying transient failures as a write is
        retried; ConfigError when it is missing and the login may not create it."""
        self._retrying(lambda: self.client.ensure_database(self.database), writing=False)

    def _write_halving(self, lines: Sequence[str], precision: Precision) -> None:
        try:
            self._send(lines, precision)
        except BatchTooLargeError:
            if len(lines) == 1:
                raise
            half = len(lines) // 2
            self._write_halving(lines[:half], precision)
            self._write_halving(lines[half:], precision)

    def _write_groups(
        self, indices: Sequence[int], groups: Sequence[Sequence[str]], precision: Precision
    ) -> list[tuple[int, RejectedError]]:
        if not indices:
            return []
        try:
            self._send([line for index in indices for line in groups[index]], precision)
        except BatchTooLargeError as exc:
            if len(indices) == 1:
                return [(indices[0], exc)]
            half = len(indices) // 2
            return self._write_groups(indices[:half], groups, precision) + self._write_groups(
                indices[half:], groups, precision
            )
        except RejectedError as exc:
            if len(indices) == 1:
                return [(indices[0], exc)]
            refused: list[tuple[int, RejectedError]] = []
            for index in indices:  # find the refused ones; the others are stored
                refused += self._write_groups([index], groups, precision)
            return refused
        return []

    def _send(self, lines: Sequence[str], precision: Precision) -> None:
        self._retrying(lambda: self.client.write(self.database, lines, precision=precision))

    def _retrying(self, action: Callable[[], None], *, writing: bool = True) -> None:
        """Run `action` until it succeeds, within the attempts; `on_retry` hears of the retries
        of writes."""
        backoff: Backoff | None = None
        tries = 0
        created = False
        while True:
            try:
                action()
                return
            except DatabaseNotFoundError as exc:
                if not self.create_database or created:  # still missing: wait before creating again
                    failure: TransientError = exc
                    created = False
                else:
                    log.info("database %s does not exist: creating it", self.database)
                    self.ensure_database()
                    created = True
                    continue
            except TransientError as exc:
                failure = exc
            tries += 1
            if self.attempts is not None and tries >= self.attempts:
                raise failure
            if isinstance(failure, ThrottledError) and failure.retry_after_s:
                delay_s = failure.retry_after_s
            else:
                backoff = backoff or Backoff(base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
                delay_s = backoff.next_delay_s()
            log.warning("InfluxDB failed (%s); retry in %.1f s", failure, delay_s)
            if writing:
                self._on_retry(failure, delay_s)
            self._wait(delay_s, failure)

    def _wait(self, delay_s: float, failure: TransientError) -> None:
        if self._stop is None:
            time.sleep(delay_s)
        elif self._stop.wait(delay_s):
            raise WriteStopped(f"stopped while writing to InfluxDB failed: {failure}") from failure
