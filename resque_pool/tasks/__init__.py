"""A backend for Django's Tasks framework that runs tasks on the pool's workers.

``TASKS = {"default": {"BACKEND": "resque_pool.tasks.ResqueBackend"}}``; see docs/tasks.md.
Works with Django 6's ``django.tasks`` and with the ``django-tasks`` backport on Django 5.2
(``pip install "django-resque-pool[tasks]"``); ``compat.py`` hides the differences.

Modules: ``backend`` (the backend), ``wrapper`` (the Resque job carrying a task),
``execution`` (running it in a worker), ``results`` (result records in Redis),
``known_tasks`` (the tasks this process knows), ``queues`` (queue names and priority bands),
``compat`` (which framework), ``discovery`` (finding the project's tasks at start-up).
The admin's task results pages are ``resque_pool/dashboard/task_views.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resque_pool.tasks.backend import ResqueBackend
    from resque_pool.tasks.wrapper import TaskWrapper

__all__ = ["WRAPPER_NAME", "ResqueBackend", "TaskWrapper"]

# The ``class`` of every task's Resque payload (resque_pool/tasks/wrapper.py); the
# dashboard shows the task's own path instead.
WRAPPER_NAME = "resque_pool.tasks.TaskWrapper"


def __getattr__(name: str) -> Any:
    # Lazy: importing resque_pool.tasks (apps.py does) must not require the framework.
    if name == "ResqueBackend":
        from resque_pool.tasks.backend import ResqueBackend

        return ResqueBackend
    if name == "TaskWrapper":
        from resque_pool.tasks.wrapper import TaskWrapper

        return TaskWrapper
    raise AttributeError(f"module 'resque_pool.tasks' has no attribute {name!r}")
