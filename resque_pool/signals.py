"""Django signals django-resque-pool sends.

``job_failure``: every failed attempt of a job whose outcome Redis took, with
``failure=`` a ``resque_pool.failure_backends.Failure`` (the job's class, args, queue,
worker, attempt, outcome and exception) and ``sender=Failure``. Sent in the process that
wrote the outcome (docs/failures.md says which one for each kind of failure), once,
after the failure backends.
"""

from __future__ import annotations

from django.dispatch import Signal

job_failure = Signal()
