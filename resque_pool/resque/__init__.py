"""Resque's data layout in Redis, shared byte for byte with Ruby's Resque and resque-web.

``connection`` (the client and key names), ``wire`` (JSON and time formats), ``jobs``
(payloads, the job registry, enqueue), ``queue_lists`` and ``queue_resolution`` (which
queues a worker reads), ``workers`` (a worker's own records), ``outcomes`` (what a finished
job writes), ``failures`` (the failed list) and ``pruning`` (workers that died).
Nothing here forks or handles signals: that is ``resque_pool.worker`` and
``resque_pool.pool``.
"""
