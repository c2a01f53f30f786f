"""resque-pool's YAML file: reading, ``${VAR}`` interpolation, environment merge, validation.

The merge is resque-pool's ``FileOrHashLoader#apply_environment``: root keys are defaults,
the section named after the environment overrides them key by key, and then every
hash-valued key (the chosen section, every other section, any nested mapping) is dropped.

Limits per queue list live under a reserved ``limits:`` mapping, at the root and inside an
environment section; Ruby's resque-pool drops that mapping like any other hash.

Where resque-pool evaluates ERB, we interpolate ``${VAR}`` and ``${VAR:-default}`` from the
environment; an unset variable without a default is an error, never a silent empty string.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from collections.abc import Mapping
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from resque_pool.conf import settings
from resque_pool.resque.queue_lists import normalize_queue_list


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line for a person."""


# A pool's configuration is a few lines; these bounds keep a hostile or mistaken file (an
# alias bomb, /dev/zero, a FIFO, a huge generated file) from eating the manager's memory
# or freezing it on HUP.
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 10_000  # YAML nodes in a document, aliases counted at their expanded size
MAX_ALIASED_NODES = 1_000  # of those, how many may come from expanding aliases

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlevel = 2


def quote(value: Any) -> str:
    """A bounded repr for error messages: a value can be megabytes long (or recursive)."""
    return _short.repr(value)


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ``$${`` escapes a literal ``${``.
_VARIABLE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, environ: Mapping[str, str] | None = None, source: str = "") -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in ``text``; comment lines are left alone.

    ``:-`` follows the shell: the default applies when the variable is unset or empty.
    """
    environ = os.environ if environ is None else environ
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("#"):
            continue

        def replace(match: re.Match[str], number: int = number) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            value = environ.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value is not None:  # set but empty, and no default: empty, like the shell
                return value
            where = f"{source}:{number}" if source else f"line {number}"
            name = clip(name, 60)
            raise ConfigError(
                f"{where}: environment variable {name} is not set "
                f"(write ${{{name}:-default}} to give a default)"
            )

        lines[number - 1] = _VARIABLE.sub(replace, line)
    return "".join(lines)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so a queue named ``on``, ``yes``
    or ``no`` stays a string key (YAML 1.1 would turn it into a boolean).

    It also counts the nodes it composes, an alias at the size of what it expands to, and
    stops at ``MAX_NODES`` (``MAX_ALIASED_NODES`` through aliases): a few hundred bytes of
    nested aliases otherwise expand to billions of values. An alias to a node that is still
    being composed (a recursive structure) is refused too."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._aliased = 0
        self._sizes: dict[int, int] = {}
        self._open_anchors: set[str] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if event.anchor in self._open_anchors:
                    self._refuse(event, "an alias refers to a node that contains it")
                size = _expanded_size(target, self._sizes)
                self._aliased += size
                self._nodes += size
                if self._aliased > MAX_ALIASED_NODES:
                    self._refuse(event, f"aliases expand to more than {MAX_ALIASED_NODES} nodes")
            return super().compose_node(parent, index)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._refuse(event, f"too many entries (more than {MAX_NODES} YAML nodes)")
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            return super().compose_node(parent, index)
        self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)

    @staticmethod
    def _refuse(event: Any, problem: str) -> None:
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Nodes in ``node`` once every alias inside it is expanded (memoised per node)."""
    known = sizes.get(id(node))
    if known is None:
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        known = sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return known


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_yaml(text: str, source: str = "") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {clip(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None


def _queue_key(key: Any, source: str) -> str:
    if isinstance(key, bool) or key is None:
        raise ConfigError(f"{source}: {quote(key)} is not a queue list")
    try:
        return normalize_queue_list(str(key))
    except ValidationError as error:
        raise ConfigError(
            f"{source}: queue list {quote(str(key))}: {clip(error.messages[0])}"
        ) from None


def validate_counts(mapping: Any, source: str) -> dict[str, int]:
    """``{"foo, bar": 2}`` -> ``{"foo,bar": 2}``; ConfigError for anything else.

    Keys must be queue lists (normalised), values integers >= 0 (a boolean is not a count),
    adding up to at most ``RESQUE_POOL_MAX_WORKERS``. Two keys that normalise to the same
    list are refused: which one wins would be a guess.
    """
    return check_ceiling(_validate_entries(mapping, source), source)


def max_workers() -> int:
    return int(settings.RESQUE_POOL_MAX_WORKERS)


def check_ceiling(counts: dict[str, int], source: str) -> dict[str, int]:
    """Refuse counts adding up to more than ``RESQUE_POOL_MAX_WORKERS``: a typo such as
    ``foo: 99999999999`` must not fork until the kernel refuses."""
    total, ceiling = sum(counts.values()), max_workers()
    if total > ceiling:
        raise ConfigError(
            f"{source}: {total} workers in total, more than RESQUE_POOL_MAX_WORKERS ({ceiling})"
        )
    return counts


def _validate_entries(mapping: Any, source: str) -> dict[str, int]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of queue lists to counts, got {type(mapping).__name__}"
        )
    counts: dict[str, int] = {}
    for raw_key, value in mapping.items():
        queues = _queue_key(raw_key, source)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"{source}: count for {quote(queues)} must be an integer >= 0, got {quote(value)}"
            )
        if queues in counts:
            raise ConfigError(f"{source}: queue list {quote(queues)} is given twice")
        counts[queues] = value
    return counts


def merge_environment(config: Any, environment: str | None, source: str) -> dict[str, int]:
    """resque-pool's merge: root defaults, the environment's section over them, sections
    and other mappings dropped; then validated.

    Keys are normalised before merging so that ``"foo, bar"`` in a section overrides
    ``"foo,bar"`` at the root, as a reader would expect.
    """
    if config is None:
        raise ConfigError(f"{source}: the file is empty (write {{}} for a pool with no workers)")
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of queue lists to counts, got {type(config).__name__}"
        )
    merged = _validate_entries(
        {k: v for k, v in config.items() if not isinstance(v, Mapping)}, source
    )
    section = config.get(environment) if environment else None
    if isinstance(section, Mapping):
        scalars = {k: v for k, v in section.items() if not isinstance(v, Mapping)}
        merged.update(_validate_entries(scalars, f"{source} [{environment}]"))
    # The ceiling is for what the pool runs: the merge, not the root or a section alone.
    return check_ceiling(merged, source)


# The reserved key of a file's limits per queue list. Ruby's resque-pool sees it as one more
# environment section (a hash) and drops it, so the file stays valid for Ruby.
LIMITS_KEY = "limits"
LIMIT_NAMES = ("job_timeout", "max_jobs", "max_memory_mb")
# The range of the WorkerCount limit columns: a file and an admin row accept the same values.
MAX_LIMIT = 2_147_483_647


def validate_limits(mapping: Any, source: str) -> dict[str, dict[str, int]]:
    """``{"a, b": {"max_jobs": 5}}`` -> ``{"a,b": {"max_jobs": 5}}``; ConfigError otherwise.
    For a file's ``limits:`` mappings and a custom loader's ``limits()`` alike."""
    limits: dict[str, dict[str, int]] = {}
    for raw_key, value in mapping.items():
        queues = _queue_key(raw_key, source)
        if queues in limits:
            raise ConfigError(f"{source}: queue list {quote(queues)} is given twice")
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{source}: limits for {quote(queues)} must be a mapping of "
                f"{', '.join(LIMIT_NAMES)}, got {quote(value)}"
            )
        own: dict[str, int] = {}
        for name, number in value.items():
            if name not in LIMIT_NAMES:
                raise ConfigError(
                    f"{source}: unknown limit {quote(name)} for {quote(queues)} "
                    f"(known: {', '.join(LIMIT_NAMES)})"
                )
            # A boolean is not a number here, as it is not a count.
            integer = isinstance(number, int) and not isinstance(number, bool)
            if not integer or not 1 <= number <= MAX_LIMIT:
                raise ConfigError(
                    f"{source}: {name} for {quote(queues)} must be an integer from 1 to "
                    f"{MAX_LIMIT}, got {quote(number)}"
                )
            own[name] = number
        limits[queues] = own
    return limits


def merge_limits(config: Any, environment: str | None, source: str) -> dict[str, dict[str, int]]:
    """The file's limits per queue list for ``environment``: the root ``limits:`` mapping,
    then the section's ``limits:`` over it per limit (as ``WorkerCount`` rows merge). Lists
    without a count are allowed (a list may be counted in one environment only)."""
    if not isinstance(config, Mapping):
        return {}
    layers = []
    root = config.get(LIMITS_KEY)
    if isinstance(root, Mapping):
        if environment == LIMITS_KEY:
            raise ConfigError(
                f"{source}: the environment cannot be named {LIMITS_KEY!r} in a file with "
                f"a {LIMITS_KEY}: section"
            )
        layers.append(validate_limits(root, f"{source} [{LIMITS_KEY}]"))
    section = config.get(environment) if environment else None
    if isinstance(section, Mapping) and isinstance(section.get(LIMITS_KEY), Mapping):
        where = f"{source} [{environment}.{LIMITS_KEY}]"
        layers.append(validate_limits(section[LIMITS_KEY], where))
    merged: dict[str, dict[str, int]] = {}
    for layer in layers:
        for queues, own in layer.items():
            merged.setdefault(queues, {}).update(own)
    return merged


def load(
    path: str, environment: str | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Read, interpolate, parse, merge and validate one file: its counts and its limits."""
    config = parse_yaml(interpolate(read_config(path), environ, path), path)
    return merge_environment(config, environment, path), merge_limits(config, environment, path)


def load_file(path: str, environment: str | None, environ: Mapping[str, str] | None = None):
    """The counts of one file (see ``load``)."""
    return load(path, environment, environ)[0]


def read_config(path: str) -> str:
    """The text of a regular file of at most ``MAX_FILE_BYTES``. A symlink to a regular
    file is fine; one to ``/dev/zero``, a FIFO or a device is refused (``O_NONBLOCK``: the
    open of a FIFO with no writer must not hang the manager)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        limit = f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {limit}; a pool configuration is a few lines")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # it may have grown since fstat
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {limit}; a pool configuration is a few lines")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error.reason}") from None


class FileLoader:
    """A loader for one file, cached like resque-pool's: the file is read on the first call
    and again only after ``reset()`` (HUP). A failed read is cached too, so a broken file is
    not re-read every second; the next HUP tries again.

    The failure is cached as its message and raised as a new exception each time: raising
    one exception object again appends to its ``__traceback__``, which grew once a second
    for as long as the broken file stayed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._counts: dict[str, int] | None = None
        self._limits: dict[str, dict[str, int]] = {}
        self._error: str | None = None

    def _load(self, environment: str | None) -> None:
        if self._counts is None and self._error is None:
            try:
                self._counts, self._limits = load(self.path, environment)
            except ConfigError as error:
                self._error = str(error)

    def __call__(self, environment: str | None) -> dict[str, int]:
        self._load(environment)
        if self._error is not None:
            raise ConfigError(self._error)
        return dict(self._counts or {})

    def limits(self, environment: str | None) -> dict[str, dict[str, int]]:
        """The file's limits per queue list. After a failed re-read (HUP) the last good
        limits stay, as the manager keeps the last good counts."""
        self._load(environment)
        return {queues: dict(own) for queues, own in self._limits.items()}

    def reset(self) -> None:
        self._counts = None
        self._error = None

    def __str__(self) -> str:
        return self.path


DEFAULT_FILES = ("resque-pool.yml", "config/resque-pool.yml")


def default_file_present(cwd: str = ".") -> str | None:
    """resque-pool's implicit lookup; we only warn about such a file (see docs/pool.md)."""
    for name in DEFAULT_FILES:
        if os.path.isfile(os.path.join(cwd, name)):
            return name
    return None
