"""Keep credentials out of everything the orchestrator prints, logs or writes.

Credentials reach the product only through the environment (or Kubernetes Secrets mounted as
environment variables). URIs are the one place a user may still embed one
(``postgresql://user:pass@db/mlflow``, ``https://token@host``): every URI that is shown or
stored goes through :func:`redact_uri` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_QUERY_KEYS = re.compile(r"(pass|secret|token|key|signature|credential|auth)", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` with any password (or bare token) in its user info and secret-looking query
    parameters replaced by ``***``. Paths and plain URIs come back unchanged."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0] if ":" in userinfo else MASK
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # urlunsplit would normalise e.g. sqlite://// paths
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_credentials(uri: str) -> bool:
    """Whether ``uri`` embeds something :func:`redact_uri` would hide."""
    return redact_uri(uri) != uri


def redact_text(text: str, *uris: str) -> str:
    """``text`` with the secret parts of ``uris`` (passwords, tokens) masked wherever they occur,
    e.g. in an error message that quotes the URI."""
    from urllib.parse import unquote

    for uri in uris:
        if "://" not in uri:
            continue
        netloc = urlsplit(uri).netloc
        if "@" in netloc:
            userinfo = netloc.rsplit("@", 1)[0]
            secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
            for form in {secret, unquote(secret)}:
                if form:
                    text = text.replace(form, MASK)
        text = text.replace(uri, redact_uri(uri))
    return text
