"""InfluxDB through its v1 HTTP API: line protocol on /write, InfluxQL on /query.

One request per call: `write` sends one gzip-compressed body and sorts the answer; batching,
splitting and retrying are the writer's (prognos.cloud.storage.writer).

Answers are sorted by what the caller must do: 2xx done; 400 and 422 (the data is refused, a
partial write included) RejectedError; 413 BatchTooLargeError (split and retry); 429 and 503
ThrottledError with the server's Retry-After; 401 and 403 AccessDeniedError (a TransientError:
the data is kept until the login is fixed); other 5xx and connection failures TransientError.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from prognos.errors import ConfigError, RejectedError, ThrottledError, TransientError


class BatchTooLargeError(RejectedError):
    """The server's body limit was hit: split the batch."""


class AccessDeniedError(TransientError):
    """401 or 403: the login or its privileges do not allow this. Nothing is wrong with the data,
    so it is kept and retried (an operator fixes the credentials or grants)."""


class DatabaseNotFoundError(TransientError):
    """The database does not exist (yet): create it, then retry."""


@dataclass(frozen=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [{**self.tags, **dict(zip(self.columns, row, strict=True))} for row in self.values]


@dataclass
class InfluxClient:
    url: str
    timeout_s: float = 10.0
    username: str | None = None
    password: str | None = None
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.username is not None:
            self._session.auth = (self.username, self.password or "")

    def close(self) -> None:
        self._session.close()

    def ping(self) -> bool:
        try:
            return self._session.get(f"{self.url}/ping", timeout=self.timeout_s).status_code == 204
        except requests.RequestException:
            return False

    def create_database(self, database: str) -> None:
        self.query("CREATE DATABASE " + quote_identifier(database), database=None, method="POST")

    def ensure_database(self, database: str) -> None:
        """Create `database` if missing. A login that may not create databases (a role of a
        secure stack) gets a ConfigError when it does not exist."""
        try:
            self.create_database(database)
        except AccessDeniedError as exc:
            shown = self.query("SHOW DATABASES", database=None)
            if not any(row.get("name") == database for series in shown for row in series.rows()):
                raise ConfigError(
                    f"database {database!r} does not exist and {self.username!r} may not create it: "
                    f"create it with `prognos stack up --database {database}`"
                ) from exc

    def write(self, database: str, lines: Sequence[str], precision: str = "ms") -> None:
        """Write points; gzip-compressed. Raises by the rules in the module docstring."""
        if not lines:
            return
        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)  # ~3x faster than 5
        try:
            answer = self._session.post(
                f"{self.url}/write",
                params={"db": database, "precision": precision},
                data=body,
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise TransientError(f"InfluxDB unreachable at {self.url}: {exc}") from exc
        _raise_for(answer)

    def query(
        self,
        text: str,
        *,
        database: str | None,
        params: dict[str, Any] | None = None,
        method: str = "GET",
    ) -> list[Series]:
        """Run InfluxQL; values of `params` are bound to $name placeholders by the server,
        never pasted into the text. Times come back as epoch milliseconds."""
        query: dict[str, str] = {"q": text, "epoch": "ms"}
        if database is not None:
            query["db"] = database
        if params:
            query["params"] = json.dumps(params)
        try:
            answer = self._session.request(method, f"{self.url}/query", params=query, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(f"InfluxDB unreachable at {self.url}: {exc}") from exc
        _raise_for(answer)
        series: list[Series] = []
        for result in answer.json().get("results", []):
            if "error" in result:
                raise RejectedError(f"InfluxQL error: {result['error']}")
            for item in result.get("series", []):
                series.append(
                    Series(item.get("name", ""), item.get("tags", {}) or {}, item["columns"], item["values"])
                )
        return series


def quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _raise_for(answer: requests.Response) -> None:
    status = answer.status_code
    if 200 <= status < 300:
        return
    try:
        message = str(answer.json().get("error", answer.text))
    except ValueError:
        message = answer.text
    message = f"InfluxDB answered {status}: {message.strip()[:500]}"
    if status == 404 and "database not found" in message:
        raise DatabaseNotFoundError(message)
    if status in (401, 403):
        raise AccessDeniedError(message)
    if status == 413:
        raise BatchTooLargeError(message)
    if status in (429, 503):
        raise ThrottledError(message, retry_after_s=_retry_after(answer))
    if status >= 500:
        raise TransientError(message)
    raise RejectedError(message)


def _retry_after(answer: requests.Response) -> float | None:
    """Retry-After in seconds; None when absent or not a number of seconds."""
    try:
        seconds = float(answer.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
