"""Which names hold credentials, and how they are kept out of graphs, stores and logs.

One word list for every place cubehub must not let a secret travel as a value: fsspec
storage options (any nesting level), environment variables given to Dask pods, and the
Helm chart's guard on ``extraEnv`` (``helm/cubehub/templates/_helpers.tpl`` holds the same
words; a test compares them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "SECRET_NAME_PATTERN", "SECRET_WORDS", "is_secret_name", "redact"]

#: Parts of a name (case-insensitive) that mark it as holding a secret. ``key`` alone is
#: s3fs's access key id option.
SECRET_WORDS = (
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "access_key",
    "account_key",
    "private",
    "sas",
    "connection_string",
    "signature",
    "auth",
)
#: The pattern (case-insensitive) of secret names; the chart's guard uses the same text.
SECRET_NAME_PATTERN = r"^key$|" + "|".join(SECRET_WORDS)
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN, re.IGNORECASE)
#: ``scheme://user:password@host`` in a URL.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
REDACTED = "***"


def is_secret_name(name: str) -> bool:
    """True for names that hold credentials.

    >>> [is_secret_name(n) for n in ("AWS_SECRET_ACCESS_KEY", "key", "endpoint_url", "AZURE_STORAGE_CONNECTION_STRING")]
    [True, True, False, True]
    """
    return bool(_SECRET_NAME.search(name))


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-named entries and URL passwords masked, for logs.

    >>> redact({"endpoint_url": "http://u:p@host", "secret": "x", "token": "anon"})
    {'endpoint_url': 'http://***@host', 'secret': '***', 'token': 'anon'}
    """
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_name(str(k)) and v != "anon" else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    return value
