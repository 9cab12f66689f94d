"""The error hierarchy: each subclass is named for what the caller does about it."""


class PrognosError(Exception):
    """Root of every error Prognos raises on purpose."""


class ConfigError(PrognosError, ValueError):
    """Bad configuration or command-line input: report it and exit with status 2."""


class DecodeError(PrognosError, ValueError):
    """Bytes that are not a valid message: count, dead-letter or skip; never stop the loop."""


class TransientError(PrognosError):
    """A peer is unreachable or busy: retry with backoff."""


class RejectedError(PrognosError):
    """A peer refused the data for good: dead-letter it and count; never retry."""


class MissingDependencyError(ConfigError):
    """A program or package a command needs is not installed; the message says how to get it."""
