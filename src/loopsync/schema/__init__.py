"""Shopify's official Admin GraphQL schema, vendored.

``admin_2026-10.json.gz`` is the introspection result shipped in Shopify's
ISC-licensed ``@shopify/dev-mcp`` npm package, v1.16.0 (notice in
``LICENSE.shopify-dev-mcp`` beside it). Both loopsync's tests (every document we
send is validated against it) and the sandbox (which executes queries against
it) load it from here, so a misspelled field fails locally as it would at Shopify.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphql import GraphQLSchema

API_VERSION = "2026-10"
SCHEMA_FILE = "admin_2026-10.json.gz"


@cache
def admin_schema() -> GraphQLSchema:
    """Build the schema once per process (~0.5 s); it is immutable afterwards."""
    # graphql-core is imported here, not at the top: the Shopify client needs only
    # API_VERSION from this package, and every scan would otherwise pay ~0.1 s for it.
    from graphql import build_client_schema

    with resources.files(__package__).joinpath(SCHEMA_FILE).open("rb") as raw:
        introspection = json.load(gzip.open(raw))
    return build_client_schema(introspection["data"])
