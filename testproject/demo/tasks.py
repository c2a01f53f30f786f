"""Demo tasks for Django's Tasks framework, run by the pool through ResqueBackend.

``add`` is the one the README and the acceptance checks use; the others show (and the
tests exercise) an async task, a task that takes its context, a failing one and a slow one.
"""

import asyncio
import time

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # Django 5.2 with the django-tasks backport


@task
def add(a, b):
    return a + b


@task
async def add_async(a, b):
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def attempt(context, label="attempt"):
    """Returns which attempt this is and the result id it runs for."""
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
def fail(message="failed on purpose"):
    raise ValueError(message)


@task
def sleep(seconds=1.0):
    time.sleep(float(seconds))
    return seconds
