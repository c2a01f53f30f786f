"""Jobs: ``@job``, enqueueing, and running a payload with Resque's job hooks.

Only registered names ever run: a payload's ``class`` is looked up in the registry
(``resque/registry.py``) and nothing is ever imported from a payload string.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from resque_pool.conf import settings
from resque_pool.errors import DontPerform, MalformedPayload, NoQueueError, UnknownJob
from resque_pool.resque import wire
from resque_pool.resque.connection import get_redis, key
from resque_pool.resque.queue_lists import check_queue_name
from resque_pool.resque.registry import JobDefinition, registry, source_of
from resque_pool.resque.wakeup import push_job

logger = logging.getLogger(__name__)


def job(
    queue: str | None = None,
    name: str | None = None,
    retry: Any = None,
    requeue_on_loss: bool = True,
    timeout: float | None = None,
) -> Callable[[Any], Any]:
    """Register a function or a class with a static ``perform`` as a job.

    The registered name is ``name`` (a Ruby-style name such as ``"Archive"`` lets Ruby and
    Python share a queue) or ``"<module>.<qualname>"``. The decorated object gains
    ``enqueue(*args)`` and ``job_definition``. ``retry`` is a
    ``resque_pool.scheduler.retry.Retry`` (or an integer limit): see docs/scheduling.md.
    ``requeue_on_loss=False`` keeps
    ``RESQUE_REQUEUE_DIRTY_JOBS`` from running the job again when its process died under
    it (for a job where running twice is worse than not running at all).
    ``timeout`` (seconds) ends a run that takes longer as a ``JobTimeout`` failure; it wins
    over the worker's limit and ``RESQUE_JOB_TIMEOUT`` (see docs/worker.md).
    """
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"@job(timeout=...) must be a positive number of seconds, not {timeout!r}")
    if retry is not None:
        from resque_pool.scheduler.retry import as_retry

        retry = as_retry(retry)

    def decorate(target: Any) -> Any:
        if inspect.isclass(target) and not callable(getattr(target, "perform", None)):
            raise TypeError(f"job class {target.__qualname__} needs a perform method")
        if not inspect.isclass(target) and not callable(target):
            raise TypeError(f"@job needs a function or a class, not {target!r}")
        definition = JobDefinition(
            name=name or source_of(target),
            queue=queue or getattr(target, "queue", None),
            target=target,
            retry=retry,
            requeue_on_loss=requeue_on_loss,
            timeout=timeout,
        )
        registry.add(definition)
        target.job_definition = definition
        target.enqueue = lambda *args: enqueue(definition, *args)
        target.enqueue_to = lambda to_queue, *args: enqueue(definition, *args, queue=to_queue)
        _add_delayed_methods(target, definition)
        return target

    return decorate


def _add_delayed_methods(target: Any, definition: JobDefinition) -> None:
    """``enqueue_at(when, *args)``, ``enqueue_in(delay, *args)`` and
    ``remove_delayed(*args)``, from ``resque_pool.scheduler.delayed`` (imported late: it
    imports this module)."""

    def enqueue_at(when: Any, *args: Any) -> Any:
        from resque_pool.scheduler import delayed

        return delayed.enqueue_at(when, definition, *args)

    def enqueue_in(delay: Any, *args: Any) -> Any:
        from resque_pool.scheduler import delayed

        return delayed.enqueue_in(delay, definition, *args)

    def remove_delayed(*args: Any) -> int:
        from resque_pool.scheduler import delayed

        return delayed.remove_delayed(definition, *args)

    target.enqueue_at = enqueue_at
    target.enqueue_in = enqueue_in
    target.remove_delayed = remove_delayed


@dataclass(frozen=True)
class EnqueuedJob:
    queue: str
    payload: str
    # Replicas that acknowledged the push (Redis WAIT), when the caller asked for any.
    replicas: int | None = None


def _definition_for(job_ref: Any) -> JobDefinition | None:
    if isinstance(job_ref, JobDefinition):
        return job_ref
    if isinstance(job_ref, str):
        return registry.get(job_ref)
    definition = getattr(job_ref, "job_definition", None)
    if isinstance(definition, JobDefinition):
        return definition
    raise TypeError(f"enqueue() takes a registered job or its name, not {job_ref!r}")


def unknown_job(name: Any, how_to_push: str) -> UnknownJob:
    """The error for a name nobody registered here; ``how_to_push`` names the caller's way
    of giving a queue (``pass queue=`` in Python, ``give --queue QUEUE`` in the shell)."""
    return UnknownJob(
        f"no job is registered as {name!r}; register it with @job or {how_to_push} to push "
        f"it for another worker (registered: {', '.join(registry.names()) or 'none'})"
    )


def resolve(job_ref: Any, queue: str | None) -> tuple[JobDefinition | None, str, str]:
    """The definition (None for a name only Ruby workers know), the class name and the
    queue a job goes to, checked: shared by ``enqueue`` and the scheduler's ``enqueue_at``."""
    definition = _definition_for(job_ref)
    if definition is None and queue is None:
        raise unknown_job(job_ref, "pass queue=")
    class_name = definition.name if definition else str(job_ref)
    target_queue = queue if queue is not None else (definition.queue if definition else None)
    if target_queue is None:
        raise NoQueueError(f"job {class_name!r} has no queue; give @job(queue=...) or queue=")
    try:
        check_queue_name(target_queue)
    except ValidationError as error:
        raise ValueError(f"{class_name}: {error.messages[0]}") from None
    return definition, class_name, target_queue


def enqueue(
    job_ref: Any, *args: Any, queue: str | None = None, wait_replicas: int | None = None
) -> EnqueuedJob | None:
    """Push a job, as ``Resque.enqueue``/``enqueue_to`` do.

    ``job_ref`` is a decorated job, its definition, or a name. A name that is not registered
    here (a job only Ruby workers know) can be pushed when ``queue`` is given. Returns what
    was pushed, or None when a ``before_enqueue*`` hook returned ``False``.

    ``wait_replicas`` (default ``RESQUE_ENQUEUE_WAIT_REPLICAS``) waits, with Redis's
    ``WAIT`` and at most ``RESQUE_ENQUEUE_WAIT_TIMEOUT``, until that many replicas have the
    job; how many did is ``EnqueuedJob.replicas`` (fewer is logged, not raised: the job is
    on the master either way). See docs/scaling.md for what that buys in a failover.
    """
    definition, class_name, target_queue = resolve(job_ref, queue)
    try:
        payload = wire.job_payload(class_name, list(args))
    except (TypeError, ValueError) as error:
        raise ValueError(f"arguments of {class_name} must be JSON-serialisable: {error}") from None
    if definition is not None:
        # Refused here rather than as a failure in the worker, later and elsewhere.
        definition.check_arguments(list(args))
    if definition is not None:
        # Every before hook runs, then any ``False`` cancels (Resque's enqueue_to).
        results = [hook(*args) for hook in definition.hooks("before_enqueue")]
        if any(result is False for result in results):
            return None
    if wait_replicas is None:
        wait_replicas = settings.RESQUE_ENQUEUE_WAIT_REPLICAS
    pipe = get_redis().pipeline(transaction=False)
    push_job(pipe, target_queue, payload)
    if wait_replicas:
        # In the same pipeline, so on the same connection: WAIT counts the replicas that
        # have this connection's writes. (Not inside MULTI or a script, where it does not
        # block.)
        timeout_ms = max(1, int(settings.RESQUE_ENQUEUE_WAIT_TIMEOUT * 1000))
        pipe.execute_command("WAIT", wait_replicas, timeout_ms)
    replies = pipe.execute()
    acknowledged = int(replies[-1]) if wait_replicas else None
    if acknowledged is not None and acknowledged < wait_replicas:
        logger.warning(
            "%s pushed to %s, but only %d of %d replicas acknowledged it within %gs",
            class_name,
            target_queue,
            acknowledged,
            wait_replicas,
            settings.RESQUE_ENQUEUE_WAIT_TIMEOUT,
        )
    if definition is not None:
        for hook in definition.hooks("after_enqueue"):
            hook(*args)
    return EnqueuedJob(queue=target_queue, payload=payload, replicas=acknowledged)


def class_name_of(payload: Any) -> str | None:
    """The payload's ``class`` when it is a string, else None."""
    if isinstance(payload, dict) and isinstance(payload.get("class"), str):
        return payload["class"]
    return None


@dataclass
class Job:
    """A reserved job: the queue it came from and its decoded payload."""

    queue: str
    payload: Any  # a dict for a well-formed job; the raw string when it is not JSON
    raw: str
    failure_hooks_ran: bool = False
    parse_error: str | None = None  # why ``raw`` could not be decoded
    # (payload, definition) of the last successful validate(): perform() after the worker's
    # check does not check the same payload again.
    _validated: tuple[Any, JobDefinition] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def reserve(cls, queue: str) -> Job | None:
        """``LPOP queue:<queue>``, as ``Resque::Job.reserve``."""
        raw = get_redis().lpop(key("queue", queue))
        if raw is None:
            return None
        return cls.from_raw(queue, raw)

    @classmethod
    def from_raw(cls, queue: str, raw: str) -> Job:
        try:
            payload = wire.loads_payload(raw)
        except ValueError as error:
            # Not JSON at all, or JSON that Python cannot hand to a job (1e999, NaN, ...).
            what = "is not JSON" if isinstance(error, json.JSONDecodeError) else "cannot be read"
            parse_error = f"{what} ({str(error)[:200]})"
            return cls(queue=queue, payload=raw, raw=raw, parse_error=parse_error)
        return cls(queue=queue, payload=payload, raw=raw)

    @classmethod
    def from_payload(cls, queue: str, payload: Any) -> Job:
        """A job from a decoded payload (as ``worker:<id>`` holds it); a string payload is
        the raw text of one that was not JSON."""
        raw = payload if isinstance(payload, str) else wire.dumps(payload)
        return cls(queue=queue, payload=payload, raw=raw)

    @property
    def class_name(self) -> str | None:
        return class_name_of(self.payload)

    def describe(self, limit: int = 200) -> str:
        """``(Job{queue} | payload)`` for logs, the payload cut to ``limit`` characters."""
        # Bytes that were not UTF-8 (and lone surrogates) shown as escapes: a log line must
        # never fail to encode.
        text = f"(Job{{{self.queue}}} | {self.raw[:limit]})"
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    @property
    def args(self) -> list[Any]:
        if isinstance(self.payload, dict) and isinstance(self.payload.get("args"), list):
            return self.payload["args"]
        return []

    def validate(self) -> JobDefinition:
        """The job's definition, or a JobError saying exactly what is wrong with the payload."""
        if not isinstance(self.payload, dict):
            if isinstance(self.payload, str) and self.parse_error is not None:
                raise MalformedPayload(f"payload {self.parse_error}: {self.raw[:200]!r}")
            raise MalformedPayload(f"payload is not a JSON object: {self.raw[:200]!r}")
        if not isinstance(self.payload.get("class"), str) or not self.payload["class"]:
            raise MalformedPayload(f"payload has no 'class' string: {self.raw[:200]!r}")
        if "args" in self.payload and not isinstance(self.payload["args"], list):
            raise MalformedPayload(
                f"payload 'args' must be a list, not {type(self.payload['args']).__name__}"
            )
        definition = registry.get(self.payload["class"])
        if definition is None:
            raise UnknownJob(f"no job is registered as {self.payload['class']!r} in this worker")
        definition.check_arguments(self.args)
        self._validated = (self.payload, definition)
        return definition

    def perform(self) -> bool:
        """Run the job with its hooks; True if it ran, False if a before hook said
        DontPerform or an around hook did not yield.

        Exceptions from the job propagate after the ``on_failure*`` hooks ran; the caller
        records the failure.
        """
        validated = self._validated
        if (
            validated is not None
            and validated[0] is self.payload
            and registry.get(validated[1].name) is validated[1]
        ):
            definition = validated[1]
        else:
            definition = self.validate()
        args = self.args
        try:
            try:
                for hook in definition.hooks("before_perform"):
                    hook(*args)
            except DontPerform:
                return False
            performed = _run_around_chain(
                definition.hooks("around_perform"), definition.perform, args
            )
            for hook in definition.hooks("after_perform"):
                hook(*args)
            if definition.retry is not None:
                from resque_pool.scheduler.retry import succeeded

                succeeded(definition.name, args)  # resque-retry's after_perform
            return performed
        except BaseException as error:
            if isinstance(error, Exception):
                self.run_failure_hooks(error)
            raise

    def run_failure_hooks(self, error: BaseException) -> None:
        """``on_failure*(exception, *args)``, at most once per job, as Resque does."""
        if self.failure_hooks_ran:
            return
        self.failure_hooks_ran = True
        if self.class_name is None:
            return
        definition = registry.get(self.class_name)
        if definition is None:
            return
        for hook in definition.hooks("on_failure"):
            hook(error, *self.args)


def _run_around_chain(
    hooks: list[Callable[..., Any]], perform: Callable[..., Any], args: list[Any]
) -> bool:
    """Nest ``around_perform*`` generator hooks, first outermost; each ``yield`` runs the
    next level. A hook that returns without yielding skips everything inside it. True when
    the job itself ran (Resque's ``job_was_performed``)."""
    if not hooks:
        perform(*args)
        return True
    outer, inner = hooks[0], hooks[1:]
    generator = outer(*args)
    if not inspect.isgenerator(generator):
        raise TypeError(f"around_perform hook {outer.__name__} must be a generator (use yield)")
    try:
        next(generator)
    except StopIteration:
        return False  # the hook chose not to yield: the job does not run
    try:
        performed = _run_around_chain(inner, perform, args)
    except BaseException as error:
        try:
            generator.throw(error)
        except StopIteration:
            return False  # the hook swallowed the error: the job did not complete
        raise
    try:
        next(generator)
    except StopIteration:
        return performed
    raise RuntimeError(f"around_perform hook {outer.__name__} yielded more than once")
