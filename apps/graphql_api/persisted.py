"""Automatic persisted queries (Apollo's protocol, which Apollo Client's and urql's persisted-query
links speak): a client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the
document; an unknown hash answers `PersistedQueryNotFound`, and the client sends the document once
with its hash, which the server checks and keeps. Then GETs carry only the hash (short URLs a CDN or
proxy may cache). Documents are kept in the shared cache (Redis), so every web process knows them."""

import hashlib

from django.conf import settings
from django.core.cache import cache

from vibebox import exceptions as errors

PREFIX = "graphql-apq:"


def resolve(query, extensions) -> str | None:
    """The document to run: `query` itself, or the one kept under the hash `extensions` names."""
    if extensions is None:
        return query
    if not isinstance(extensions, dict):
        raise errors.ValidationFailed("extensions is a JSON object.", details={"field": "extensions"})
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return query
    if not settings.VIBEBOX_GRAPHQL_PERSISTED_QUERIES:
        raise errors.PersistedQueryNotSupported()
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise errors.ValidationFailed("persistedQuery: {version: 1, sha256Hash}.", details={"field": "extensions"})
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise errors.ValidationFailed("sha256Hash: 64 lowercase hex digits.", details={"field": "extensions"})
    if not isinstance(query, str) or not query:
        kept = cache.get(PREFIX + digest)
        if kept is None:
            raise errors.PersistedQueryNotFound()
        return kept
    if hashlib.sha256(query.encode()).hexdigest() != digest:
        raise errors.PersistedQueryHashMismatch(details={"sha256Hash": digest})
    cache.set(PREFIX + digest, query, timeout=settings.VIBEBOX_GRAPHQL_PERSISTED_QUERY_TTL)
    return query
