"""The pool manager (``manage.py resque_pool``): config sources, the arbiter and daemon plumbing."""
