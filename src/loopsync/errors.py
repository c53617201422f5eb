"""Typed errors. Each carries one user-facing sentence and its exit code.

Messages must never contain a secret: they are printed as they are.
"""

from __future__ import annotations

from loopsync.exit_codes import ExitCode


class LoopsyncError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(LoopsyncError):
    """Bad input or configuration: a malformed shop domain, no connection, bad flag value."""

    exit_code = ExitCode.USAGE


class StateFileError(ConfigError):
    """The SQLite state file cannot be opened, read, written or migrated."""


class NotFoundError(ConfigError):
    """Something the user named (an order, a variant) does not exist."""


class LockHeldError(LoopsyncError):
    exit_code = ExitCode.LOCKED


class CredentialsError(LoopsyncError):
    """An API rejected our credentials (401/403) or a needed scope is missing."""

    exit_code = ExitCode.CREDENTIALS


class ApiError(LoopsyncError):
    """An API kept failing, or answered with something we cannot use."""

    exit_code = ExitCode.API_UNAVAILABLE


class TransientApiError(ApiError):
    """A failure worth retrying: 5xx, dropped connection, timeout, throttling, 429."""


class OutcomeUnknownError(ApiError):
    """A non-idempotent call (a Loop note) may or may not have taken effect.

    The caller must look before trying again (read the notes list), never resend blindly.
    """


class GraphQLError(ApiError):
    """Shopify answered with top-level ``errors`` (a bad document, access denied...)."""

    def __init__(self, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
