"""The sandbox's Shopify Admin GraphQL engine, executed against Shopify's official schema.

A request flows one way through these modules:

- ``endpoint``: token, body, parsing, validation, cost; runs the document (``ShopifyGraphQL``);
- ``scopes``: which access scope each field and node type needs, and Shopify's ACCESS_DENIED;
- ``context``: one request's world, app and id index (``RequestContext``);
- ``resolvers``: the query fields, over the ``World``; ``pagination``: Relay connections;
- ``mutations``: the mutation fields, which turn GraphQL input into calls to ``rules``;
- ``rules``: Shopify's fulfillment-hold and tag rules as plain functions over ``World`` objects;
- ``registry``: which Python function answers which schema field, and the default for the rest;
- ``cost``, ``search``, ``errors``: query cost and rate limit, ``orders(query:)`` syntax, Shopify's error wording.

Nothing here imports graphql-core at package import: ``rules`` works without it.
"""
