"""The reliability tests' fixture; the machinery is in support/harness.py, the summary line in
the top conftest (it must also print under pytest-xdist)."""

from support.harness import make_harness  # noqa: F401 - pytest finds the fixture by name
