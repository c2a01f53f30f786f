"""What an autoscaled list's queues hold: jobs waiting and how long the oldest has waited,
read in one pipelined round trip per look (``TIME``, ``LLEN`` of each queue and the
metrics' queue-head records), two for a list with a wildcard (the ``queues`` set first).

How long the oldest job has waited is a lower bound, the larger of two:

- how long the queue has held jobs at every look of this pool (a queue seen empty starts
  again): jobs have been waiting at least that long when workers never caught up;
- where a metrics scrape recorded the queue's head (``metrics:queue-heads``,
  ``resque/job_metrics.py``), how long that head has been the head.

A Resque payload carries no enqueue time, and nothing is added to one (its exact bytes
matter elsewhere), so the wait is never read from the job itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.job_metrics import QUEUE_HEADS, head_seen_at
from resque_pool.resque.queue_lists import split_queues
from resque_pool.resque.queue_resolution import QueueList


@dataclass(frozen=True)
class Backlog:
    jobs: int  # waiting in the list's queues
    waited: float  # seconds the oldest has waited, at least


class BacklogReader:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.held_since: dict[str, float] = {}  # queue: first look of the present run with jobs

    def read(self, queue_lists: Iterable[str]) -> dict[str, Backlog]:
        """Each queue list's backlog now; RedisError when Redis does not answer."""
        parsed = {text: QueueList(split_queues(text)) for text in queue_lists}
        if not parsed:
            return {}
        dynamic = any(queue_list.dynamic for queue_list in parsed.values())
        client = get_redis()
        existing = set(client.smembers(key("queues"))) if dynamic else set()
        reads = {text: queue_list.resolve(existing) for text, queue_list in parsed.items()}
        queues = sorted({queue for names in reads.values() for queue in names})
        redis_now, lengths, heads = self._look(client, queues)
        now = self.clock()
        waited: dict[str, float] = {}
        for queue in queues:
            if not lengths[queue]:
                self.held_since.pop(queue, None)
                continue
            since = self.held_since.setdefault(queue, now)
            seen = heads.get(queue)
            waited[queue] = max(now - since, redis_now - seen if seen is not None else 0, 0)
        for queue in [q for q in self.held_since if q not in lengths]:
            del self.held_since[queue]
        return {
            text: Backlog(
                sum(lengths[queue] for queue in names),
                max((waited[queue] for queue in names if queue in waited), default=0.0),
            )
            for text, names in reads.items()
        }

    @staticmethod
    def _look(client: Any, queues: list[str]) -> tuple[int, dict[str, int], dict[str, int | None]]:
        """Redis's time (whole seconds), each queue's length and its head record, in one
        pipelined round trip."""
        pipe = client.pipeline(transaction=False)
        pipe.time()
        for queue in queues:
            pipe.llen(key("queue", queue))
        if queues:
            pipe.hmget(key(QUEUE_HEADS), queues)
        seconds_micro, *rest = pipe.execute()
        lengths, records = (rest[:-1], rest[-1]) if queues else ([], [])
        return (
            int(seconds_micro[0]),
            dict(zip(queues, (int(length) for length in lengths), strict=True)),
            {queue: head_seen_at(record) for queue, record in zip(queues, records, strict=True)},
        )
