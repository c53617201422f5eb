"""The Shopify Admin GraphQL client, in parts: ``auth``, ``transport`` (retries,
pacing), ``parse``, ``client`` (the domain methods), ``documents`` (every GraphQL
document, as literal text) and ``cost`` (the requested-cost estimate)."""

from loopsync.shopify.auth import ClientCredentials, StaticToken
from loopsync.shopify.client import ShopifyClient

__all__ = ["ClientCredentials", "ShopifyClient", "StaticToken"]
