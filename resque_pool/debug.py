"""Keeping the Redis password out of what Django and we print.

``RESQUE_REDIS_URL`` may carry a password (``redis://:secret@host``), and Django's
hidden-settings pattern (``API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE``) does not match its
name, so Django's technical 500 page (``DEBUG = True``) and the report
``AdminEmailHandler`` mails would show it in full. Projects set::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "resque_pool.debug.SafeExceptionReporterFilter"

and the password is masked in every setting, in ``request.META`` (which holds the whole
process environment under ``runserver``: a ``RESQUE_REDIS_URL`` or ``DATABASE_URL``
variable) and in the traceback's local variables.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.template.defaultfilters import pprint
from django.views import debug

from resque_pool.conf import settings

MASK = "********"

# scheme://userinfo@ : the authority runs to the first "/", "?", "#" or blank, and the
# userinfo to its last "@" (an unencoded "@" in a password must not leak its tail).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#\s]*)@")
# redis-py also reads ?password=... from the query string.
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#\s]*")


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group(2).partition(":")
    # "user:password" keeps the user; a lone part may be a password (redis://secret@host).
    return f"{match.group(1)}{user}:{MASK}@" if colon else f"{match.group(1)}{MASK}@"


def mask_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``********``.

    >>> mask_url("redis://:s3cret@redis.example:6379/0")
    'redis://:********@redis.example:6379/0'
    """
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    return _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", text)


def url_password(url: Any) -> str | None:
    """The password a Redis URL carries (in its userinfo or its query), if any."""
    if not isinstance(url, str):
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    query = _QUERY_PASSWORD.search(url)
    return password or (query.group(0).partition("=")[2] if query else None) or None


class _Shown:
    """A frame variable whose masked text the debug page shows as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's filter, plus: no URL credentials and no Redis password anywhere."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_url(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        # Locals are any objects (a URL string, redis-py's connection kwargs, an auth
        # tuple): mask their printed form, as the page would show it.
        secret = url_password(settings.RESQUE_REDIS_URL)
        shown = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            text = pprint(value)
            masked = mask_url(text)
            if secret:
                # As it is and as repr() escapes it inside a quoted string.
                for form in {secret, repr(secret)[1:-1]}:
                    masked = masked.replace(form, MASK)
            shown.append((name, value if masked == text else _Shown(masked)))
        return shown
