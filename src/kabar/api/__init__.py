"""The HTTP API a CMS uses under /api/v1 of `kabar serve`: articles in, subscribers, issues.

Bearer tokens with scopes (kabar.api.tokens), limited per token (kabar.limits), described
by an OpenAPI document kabar serves at /api/v1/openapi.json.
"""
