"""The JSON API under /api/ and its OpenAPI document, one module per resource."""
