"""Helpers the tests import by name (``from support.cli import run_cli``).

``tests/`` is on pytest's ``pythonpath`` (pyproject.toml), so this package imports the
standard way from any test module or conftest; the conftest files only wrap these
helpers as fixtures. Nothing here is loaded by file path.
"""
