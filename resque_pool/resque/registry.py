"""The job registry: what each name on the wire runs, its default queue, and what the
per-job path looks up once per class (Resque's hooks, ``perform``'s signature).

Only registered names ever run: a payload's ``class`` is looked up here and nothing is ever
imported from a payload string.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resque_pool.errors import BadArguments
from resque_pool.resque import wire

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobDefinition:
    """A registered job: its name on the wire, its default queue and what runs it."""

    name: str
    queue: str | None
    target: Any  # the decorated function or class
    retry: Any = None  # a resque_pool.resque.retry.Retry, or None
    # With RESQUE_REQUEUE_DIRTY_JOBS: push the job again when its process dies under it.
    requeue_on_loss: bool = True
    # Seconds the job may run (None: the worker's limit, else RESQUE_JOB_TIMEOUT).
    timeout: float | None = None
    # What the per-job path looks up once rather than per job: the hook names per prefix and
    # perform's signature (see hooks() and check_arguments()).
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def perform(self) -> Callable[..., Any]:
        if inspect.isclass(self.target):
            return self.target.perform
        return self.target

    def hooks(self, prefix: str) -> list[Callable[..., Any]]:
        """Resque's plugin lookup: class attributes starting with ``prefix``, sorted by name.

        The names are found with ``dir()`` once and found again when an attribute is added
        to or removed from the class or one of its bases (the sizes of their ``__dict__``s
        change); the attributes themselves are read on every call."""
        target = self.target
        if not inspect.isclass(target):
            return []
        mro = target.__mro__
        shape = [len(vars(klass)) for klass in mro]
        cached = self._cache.get(prefix)
        if cached is None or cached[0] is not mro or cached[1] != shape:
            names = sorted(n for n in dir(target) if n.startswith(prefix))
            cached = self._cache[prefix] = (mro, shape, names)
        names = cached[2]
        if not names:
            return []
        return [hook for hook in (getattr(target, n) for n in names) if callable(hook)]

    def describe(self) -> str:
        """``Archive.perform(repo_id, branch='master')`` or ``myapp.jobs.archive(...)``."""
        where = f"{self.name}.perform" if inspect.isclass(self.target) else self.name
        signature = self._signature()[1]
        return f"{where}{'(...)' if signature is None else signature}"

    def prepare(self) -> None:
        """Look up the hooks and perform's signature now, so that later jobs find them
        cached (``Registry.prepare``)."""
        for prefix in HOOK_PREFIXES:
            self.hooks(prefix)
        self._signature()

    def _signature(self) -> tuple[Any, inspect.Signature | None, int | None, int | None]:
        perform = self.perform
        cached = self._cache.get(_ARITY)
        if cached is None or cached[0] != perform:  # a bound classmethod is new every time
            cached = self._cache[_ARITY] = (perform, *_signature_and_bounds(perform))
        return cached

    def check_arguments(self, args: list[Any]) -> None:
        """BadArguments naming the job and its signature when ``perform(*args)`` cannot bind
        (args are positional, as Resque passes them; ``*args`` takes any number)."""
        _, signature, least, most = self._signature()
        if signature is None:  # builtins without a signature: let the call decide
            return
        if least is not None and least <= len(args) and (most is None or len(args) <= most):
            return  # bind() would accept these: positional parameters only, enough of them
        try:
            signature.bind(*args)
        except TypeError as error:
            shown = wire.dumps(args)
            if len(shown) > 200:
                shown = shown[:200] + "…"
            raise BadArguments(
                f"{self.describe()} cannot take {len(args)} argument(s) {shown}: {error}"
            ) from None


_ARITY = object()  # JobDefinition._cache key of perform's signature
# Resque's job hooks: class attributes whose names start with these (``Job.perform``).
HOOK_PREFIXES = ("before_perform", "around_perform", "after_perform", "on_failure")


def _signature_and_bounds(
    perform: Callable[..., Any],
) -> tuple[inspect.Signature | None, int | None, int | None]:
    """``perform``'s signature and how many positional arguments ``bind(*args)`` surely
    accepts: (signature, least, most or None for ``*args``); least is None when only
    ``bind()`` can tell (a keyword-only parameter without a default always fails it)."""
    try:
        signature = inspect.signature(perform)
    except (TypeError, ValueError):
        return None, None, None
    least, most = 0, 0
    var_positional = False
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            if parameter.default is parameter.empty:
                least = most
        elif parameter.kind is parameter.VAR_POSITIONAL:
            var_positional = True
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return signature, None, None
    return signature, least, None if var_positional else most


class Registry:
    def __init__(self) -> None:
        self._jobs: dict[str, JobDefinition] = {}

    def add(self, definition: JobDefinition) -> None:
        existing = self._jobs.get(definition.name)
        if existing is not None and existing.target is not definition.target:
            same_place = source_of(existing.target) == source_of(definition.target)
            if not same_place:  # a module imported twice re-registers harmlessly
                raise ValueError(
                    f"job name {definition.name!r} is already registered by "
                    f"{source_of(existing.target)}"
                )
        self._jobs[definition.name] = definition

    def get(self, name: str) -> JobDefinition | None:
        return self._jobs.get(name)

    def remove(self, name: str) -> None:
        self._jobs.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def prepare(self) -> None:
        """Each job's hooks and signature, looked up now: in the pool's manager before it
        forks, so that they sit in memory every worker shares instead of being looked up
        (and copied) in each worker and, with a fork per job, again in every job child."""
        for definition in list(self._jobs.values()):
            try:
                definition.prepare()
            except Exception:  # noqa: BLE001 (the job's own run reports it, per job)
                logger.debug("could not look up %s's hooks ahead", definition.name, exc_info=True)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs


registry = Registry()


def source_of(target: Any) -> str:
    return f"{target.__module__}.{target.__qualname__}"
