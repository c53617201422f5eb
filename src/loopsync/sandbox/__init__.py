"""A local, stateful Shopify Admin GraphQL + Loop Returns server for demos and tests.

The product never imports this package at run time except for ``loopsync demo``
and ``loopsync sandbox serve``.
"""
