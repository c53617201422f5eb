"""Fixtures and the numbers summary for the reliability tests; the machinery is in harness.py."""

from harness import make_harness, pytest_terminal_summary  # noqa: F401 - pytest finds them by name
