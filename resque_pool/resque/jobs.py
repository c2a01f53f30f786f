"""The consumer's side of a job: a reserved payload decoded, validated against the registry
and performed with Resque's hook chain (``before_perform*``, ``around_perform*``,
``after_perform*``, ``on_failure*``).

Only registered names ever run: a payload's ``class`` is looked up in the registry
(``resque/registry.py``) and nothing is ever imported from a payload string. The
producer's side (``@job``, ``enqueue``, ``enqueue_at``) is ``resque/producer.py``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resque_pool.errors import DontPerform, MalformedPayload, UnknownJob
from resque_pool.resque import wire
from resque_pool.resque.registry import JobDefinition, registry
from resque_pool.resque.retry import succeeded


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
