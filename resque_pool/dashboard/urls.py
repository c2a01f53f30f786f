"""Every URL of the dashboard, in one table: each page's route, view and name.

``DashboardAdmin.get_urls`` (``admin.py``) mounts them under the dashboard model's admin
URL, wrapping each view in the permission check and ``admin_site.admin_view``. The names
follow the admin's ``<app>_<model>_<page>`` pattern (``resque_pool_dashboard_<name>``), as
``base.url()`` expects. The worker counts and the schedules are ordinary ``ModelAdmin``
pages, whose URLs the admin makes itself.
"""

from __future__ import annotations

from resque_pool.dashboard import (
    base,
    browse_views,
    failed_views,
    overview_views,
    queue_views,
    scheduler_views,
    task_views,
)

# (route, view, name)
ROUTES: list[tuple[str, base.View, str]] = [
    ("", overview_views.overview, "changelist"),
    ("poll/", overview_views.overview_poll, "poll"),
    ("pause-workers/", overview_views.pause_workers, "pause_workers"),
    ("resume-workers/", overview_views.resume_workers, "resume_workers"),
    ("queues/", queue_views.queue_list, "queues"),
    ("queues/<path:name>/", queue_views.queue_detail, "queue"),
    ("remove-queue/", queue_views.remove_queue, "remove_queue"),
    ("workers/", browse_views.worker_list, "workers"),
    ("workers/<path:worker_id>/", browse_views.worker_detail, "worker"),
    ("failed/", failed_views.failed_list, "failed"),
    ("failed/retry/", failed_views.failed_retry, "failed_retry"),
    ("failed/remove/", failed_views.failed_remove, "failed_remove"),
    ("failed/retry-all/", failed_views.failed_retry_all, "failed_retry_all"),
    ("failed/clear/", failed_views.failed_clear, "failed_clear"),
    ("failed/clear-retried/", failed_views.failed_clear_retried, "failed_clear_retried"),
    ("stats/", browse_views.stats, "stats"),
    ("tasks/", task_views.task_results, "tasks"),
    ("delayed/", scheduler_views.delayed_list, "delayed"),
    ("delayed/<str:stamp>/", scheduler_views.delayed_at, "delayed_at"),
    ("delayed/<str:stamp>/act/", scheduler_views.delayed_action, "delayed_action"),
    ("schedules/", scheduler_views.schedules, "schedules"),
    ("tasks/<str:result_id>/", task_views.task_result, "task_result"),
    ("stats/keys/", browse_views.key_list, "keys"),
    ("stats/keys/<path:key>/", browse_views.key_detail, "key"),
    ("value/", browse_views.whole_value, "value"),
]
