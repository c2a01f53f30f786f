"""The Prometheus view: ``path("metrics/", resque_pool.metrics.views.metrics)``.

Guarded by a bearer token (``Authorization: Bearer <RESQUE_METRICS_TOKEN>``, compared in
constant time) or a logged-in user with the dashboard's view (or change) permission:
anyone else gets 401 (no credentials) or 403 (wrong ones). The text is prometheus-client's
(``choose_encoder`` picks OpenMetrics when the scraper asks for it), never written here.

prometheus-client is an optional extra (``pip install 'django-resque-pool[metrics]'``):
without it the view answers 500 with a one-line reason, and ``manage.py check`` says so as
soon as the view is in the URLconf (``resque_pool.E011``).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import redis as redis_lib
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from resque_pool.conf import settings

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    from resque_pool.metrics.collector import ResqueCollector
except ImportError as error:  # the optional extra is not installed
    if error.name != "prometheus_client" and not str(error.name).startswith("prometheus_client."):
        raise
    CollectorRegistry = choose_encoder = ResqueCollector = None  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)

MISSING_LIBRARY = (
    "resque_pool.metrics needs prometheus-client: pip install 'django-resque-pool[metrics]'"
)
PERMISSIONS = ("resque_pool.view_dashboard", "resque_pool.change_dashboard")
_registry: Any = None


def available() -> bool:
    """Whether prometheus-client is installed."""
    return CollectorRegistry is not None


def registry() -> Any:
    """The registry holding the collector (made once: registering it reads nothing)."""
    global _registry
    if _registry is None:
        made = CollectorRegistry(auto_describe=False)
        made.register(ResqueCollector())
        _registry = made
    return _registry


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    denied = refusal(request)
    if denied is not None:
        return denied
    if not available():
        logger.error(MISSING_LIBRARY)
        return HttpResponse(MISSING_LIBRARY + "\n", status=500, content_type="text/plain")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(registry())
    except redis_lib.RedisError as failure:
        logger.error("metrics: could not read Redis: %s", failure)
        return HttpResponse(
            f"could not read Redis: {type(failure).__name__}\n",
            status=503,
            content_type="text/plain",
        )
    return HttpResponse(body, content_type=content_type)


def refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics, else the 401 or 403 to send."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if token_matches(credentials.strip()):
            return None
        return _denied(403, "wrong token")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if any(user.has_perm(permission) for permission in PERMISSIONS):
            return None
        return _denied(403, "no permission to view the dashboard")
    response = _denied(401, "a bearer token or a login is needed")
    response["WWW-Authenticate"] = 'Bearer realm="resque metrics"'
    return response


def token_matches(offered: str) -> bool:
    """Constant-time comparison with ``RESQUE_METRICS_TOKEN`` (None: no token is valid)."""
    expected = settings.RESQUE_METRICS_TOKEN
    if not expected or not offered:
        return False
    return hmac.compare_digest(offered.encode(), str(expected).encode())


def _denied(status: int, reason: str) -> HttpResponse:
    return HttpResponse(reason + "\n", status=status, content_type="text/plain")


def mounted(patterns: list[Any] | None = None) -> bool:
    """Whether the project's URLconf routes to ``metrics`` (for the system check)."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if mounted(entry.url_patterns):
                return True
        elif isinstance(entry, URLPattern) and entry.callback is metrics:
            return True
    return False
