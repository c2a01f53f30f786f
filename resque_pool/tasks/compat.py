"""The one place that knows which Tasks framework is installed.

Django 6 ships ``django.tasks``; on Django 5.2 the ``django-tasks`` backport provides the
same API as ``django_tasks``. Everything else in ``resque_pool.tasks`` imports the
framework's names from here. Where the two differ, this module gives them one name:

- the exception for an invalid task is ``InvalidTask`` in Django 6 and
  ``InvalidTaskError`` in the backport (0.12); both are exported as ``InvalidTask``;
- ``normalize_json`` lives in ``django.utils.json`` in Django 6 and in
  ``django_tasks.utils`` in the backport.
"""

from __future__ import annotations

import importlib.util

import django
from django.core.exceptions import ImproperlyConfigured

if django.VERSION < (6, 0) and importlib.util.find_spec("django_tasks") is None:
    raise ImproperlyConfigured(
        "resque_pool.tasks needs Django 6 or, on Django 5.2, the django-tasks backport: "
        'pip install "django-resque-pool[tasks]" and add "django_tasks" to INSTALLED_APPS.'
    )

if django.VERSION >= (6, 0):
    from django.tasks import DEFAULT_TASK_QUEUE_NAME, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    FRAMEWORK = "django.tasks"
else:  # Django 5.2: the backport (pip install "django-resque-pool[tasks]")
    from django_tasks import DEFAULT_TASK_QUEUE_NAME, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    FRAMEWORK = "django_tasks"

__all__ = [
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "FRAMEWORK",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
