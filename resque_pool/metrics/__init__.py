"""Prometheus metrics for the whole fleet, read from Redis at each scrape (docs/metrics.md).

``views.py`` is the guarded Django view, ``collector.py`` makes the metric families with
prometheus-client (an optional extra), ``fleet.py`` reads Redis for them in two round
trips. Workers and pools write what only they know inside writes they already make
(``resque/job_metrics.py``, ``pool/figures.py``).
"""
