"""Every exit status loopsync returns, in one place (documented in the README)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: The scan finished, but some orders are pending (retried next scan) or failed.
    PENDING = 1
    #: Bad arguments, bad configuration, no connection, unreadable state file.
    USAGE = 2
    #: Another scan holds the lock (use --wait to queue behind it).
    LOCKED = 3
    #: Shopify or Loop rejected the credentials, or a needed scope is missing.
    CREDENTIALS = 4
    #: Shopify or Loop could not be reached or kept failing after retries.
    API_UNAVAILABLE = 5
    #: A bug: something loopsync did not expect. Run again with --debug for the traceback.
    INTERNAL = 70
    #: Stopped by SIGINT (Ctrl-C); a scan stops after the call in flight and records it (128 + 2).
    INTERRUPTED = 130
    #: Stopped by SIGTERM (what systemd and `kill` send); as INTERRUPTED (128 + 15).
    TERMINATED = 143
