"""Worker-level hooks, registered by decorating a function.

```python
from resque_pool import hooks

@hooks.after_prefork
def reconnect(worker):
    ...
```

| hook | runs | receives |
|---|---|---|
| ``before_first_fork`` | in the worker, once, before it registers | the worker |
| ``before_fork`` | in the worker parent, before each job child is forked | the job |
| ``after_fork`` | in the job child, before the job runs | the job |
| ``worker_exit`` | in the worker, after it unregistered | the worker |
| ``after_prefork`` | in each worker forked by the pool manager, before it works | the worker |
| ``before_pause``, ``after_pause`` | in the worker, on USR2 / CONT | the worker |
| ``queue_empty`` | in the worker, when it turns idle after processing jobs | the worker |
| ``shutdown`` | in the worker, once, when asked to stop (signal, manager gone) | the worker |

``before_first_fork``, ``before_fork`` and ``after_fork`` errors propagate (they fail the
worker or the job); an error in the pause, ``queue_empty`` or ``shutdown`` hooks is logged
and the worker carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

HOOK_NAMES = (
    "before_first_fork",
    "before_fork",
    "after_fork",
    "worker_exit",
    "after_prefork",
    "before_pause",
    "after_pause",
    "queue_empty",
    "shutdown",
)

_registry: dict[str, list[Callable[[Any], Any]]] = {name: [] for name in HOOK_NAMES}


def register(name: str, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if name not in _registry:
        raise ValueError(f"unknown hook {name!r}; choose one of {', '.join(HOOK_NAMES)}")
    if func not in _registry[name]:
        _registry[name].append(func)
    return func


def unregister(name: str, func: Callable[[Any], Any]) -> None:
    if func in _registry.get(name, []):
        _registry[name].remove(func)


def run(name: str, arg: Any) -> None:
    """Run every hook of ``name`` in registration order; an exception propagates."""
    for func in list(_registry[name]):
        func(arg)


def before_first_fork(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("before_first_fork", func)


def before_fork(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("before_fork", func)


def after_fork(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("after_fork", func)


def worker_exit(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("worker_exit", func)


def after_prefork(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("after_prefork", func)


def before_pause(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("before_pause", func)


def after_pause(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("after_pause", func)


def queue_empty(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("queue_empty", func)


def shutdown(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return register("shutdown", func)
