"""Secrets out of sight: the one redaction of URLs and configuration dumps.

Passwords reach creditops inside URLs (``postgresql+psycopg://user:PASSWORD@host/db``,
``http://user:PASSWORD@host:5000``) and as ``SecretStr`` keys (``[serve]
admin_api_key``). Whatever is logged, printed or stored goes through
:func:`redact_url` (a URL), :func:`redact_text` (free text that may quote URLs) or
:func:`redacted_dump` (a config section or the whole ``Settings``): a URL keeps
its user, host and path and loses its password, shown as ``***``; a
``SecretStr`` shows as ``**********``.

It imports nothing of creditops (and SQLAlchemy only when a database URL has
credentials), so every module, the config included, may use it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from pydantic import BaseModel

MASK = "***"
# Query parameters that carry a credential (libpq takes ``?password=``, object
# stores take tokens and keys): their values are masked like a password.
_SECRET_QUERY = re.compile(
    r"([?&](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|key|sig)=)[^&#\s]*",
    re.IGNORECASE,
)
# A URL quoted in free text: a scheme, "://" and everything up to a blank or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss", "tcp", "tls", "s3", "gs", "ftp", "sftp"})


def redact_url(url: str) -> str:
    """``url`` with its password (and credential query parameters) replaced by ``***``.

    Database URLs are read as SQLAlchemy reads them (the password is what
    SQLAlchemy would send); web and other URLs as ``urllib`` reads them. A
    string that is not a URL comes back unchanged; one too malformed to parse
    loses everything between ``://`` and its last ``@``, so no password survives.

    Args:
        url: any string that may be a URL.

    Returns:
        The URL, safe to log, print or store.
    """
    if "://" not in url:
        return url
    redacted = url
    if "@" in url:  # else no user information, hence no password
        scheme = url.split("://", 1)[0].lower()
        redacted = _redact_web_url(url) if scheme in _WEB_SCHEMES else _redact_database_url(url)
    # last: SQLAlchemy would percent-encode the mask
    return _SECRET_QUERY.sub(rf"\1{MASK}", redacted)


def _redact_web_url(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _redact_database_url(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (log lines, errors)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def redact_values(value: Any) -> Any:
    """A JSON-like value with every URL string in it redacted (dicts and lists walked)."""
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item) for item in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def redacted_dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-safe data, ready to be logged or stored.

    ``SecretStr`` fields dump as ``**********`` (pydantic's JSON mode) and every
    URL's password as ``***``.
    """
    dumped: dict[str, Any] = redact_values(model.model_dump(mode="json"))
    return dumped
