"""The Resque job every task travels in, as Rails' ActiveJob wraps its jobs.

On the wire::

    {"class":"resque_pool.tasks.TaskWrapper",
     "args":[{"task":"myapp.tasks.add","id":"<result id>","backend":"default",
              "queue_name":"default","priority":0,"args":[1,2],"kwargs":{}}]}

The dashboard shows the task's path (``myapp.tasks.add``) as the job's class.
"""

from __future__ import annotations

from typing import Any

from resque_pool.resque.producer import job
from resque_pool.tasks import WRAPPER_NAME, execution


@job(name=WRAPPER_NAME)
class TaskWrapper:
    @staticmethod
    def perform(data: dict[str, Any]) -> None:
        execution.run(data)

    @staticmethod
    def on_failure_task_result(error: BaseException, *args: Any) -> None:
        # Runs for every failure of the job, including a DirtyExit recorded by the worker,
        # the manager or a prune after the process running the task died.
        execution.lost(error, args)
