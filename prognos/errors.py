"""The error hierarchy: each subclass is named for what the caller does about it."""


class PrognosError(Exception):
    """Root of every error Prognos raises on purpose."""


class ConfigError(PrognosError, ValueError):
    """Bad configuration or command-line input: report it and exit with status 2."""


class DecodeError(PrognosError, ValueError):
    """Bytes that are not a valid message: count, dead-letter or skip; never stop the loop."""


class TransientError(PrognosError):
    """A peer is unreachable or busy: retry with backoff."""


class ThrottledError(TransientError):
    """A peer asked to be left alone for a while (HTTP 429 or 503): retry after `retry_after_s`
    seconds when it said how long (Retry-After), else with backoff."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RejectedError(PrognosError):
    """A peer refused the data for good: dead-letter it and count; never retry."""


class MissingDependencyError(ConfigError):
    """A program or package a command needs is not installed; the message says how to get it."""


class ConflictError(ConfigError):
    """Someone else changed a record since the caller read it (optimistic versioning): nothing
    was written; look at it again and repeat the change if it still applies."""
