"""How a pool sizes itself: autoscaling an autoscaled queue list between its count and its
maximum from its queues' backlog (``autoscale.py``, ``backlog.py``), and the memory budget
that no fork may take the pool past (``cgroup.py``: the container's limit, ``memory.py``:
the tree's PSS and the budget). The manager (``resque_pool/pool/``) asks; nothing
here forks or signals a process."""
