"""Capacity management: how the pool sizes itself.

``cgroup.py`` reads the container's memory limit (cgroup v2 or v1), ``memory.py`` measures
the pool's process tree and keeps it within its memory budget
(``RESQUE_POOL_MEMORY_BUDGET_MB``, by default that limit less 10 %), refusing forks that
would not fit. Autoscaling between a queue list's count and its ``max_count`` will live
here too. The package sits beside the scheduler and the Tasks backend: it may use the
Resque data layer, ``unix`` and the ground, never the pool, the models or the admin.
"""
