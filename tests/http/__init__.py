"""The HTTP Lambda (`functions.http_api`), called with API Gateway payload 2.0 events."""
