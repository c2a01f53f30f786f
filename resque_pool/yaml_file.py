"""A pool's YAML file as Python values: the file read within bounds, ``${VAR}``
interpolated, and parsed by a safe loader with YAML 1.2 booleans and a bound on aliases.

Where resque-pool evaluates ERB, we interpolate ``${VAR}`` and ``${VAR:-default}`` from the
environment; an unset variable without a default is an error, never a silent empty string.

What the values mean (counts, limits, the merge by environment) is up to ``config.py``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import Any

import yaml

from resque_pool.config_error import ConfigError, clip

# A pool's configuration is a few lines; these bounds keep a hostile or mistaken file (an
# alias bomb, /dev/zero, a FIFO, a huge generated file) from eating the manager's memory
# or freezing it on HUP.
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 10_000  # YAML nodes in a document, aliases counted at their expanded size
MAX_ALIASED_NODES = 1_000  # of those, how many may come from expanding aliases


def read_config(path: str, kind: str = "a pool configuration") -> str:
    """The text of a regular file of at most ``MAX_FILE_BYTES``. A symlink to a regular
    file is fine; one to ``/dev/zero``, a FIFO or a device is refused (``O_NONBLOCK``: the
    open of a FIFO with no writer must not hang the manager). ``kind`` names the file in
    the size error (``load_resque_schedule`` reads schedule files with it too)."""
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
            raise ConfigError(f"{path}: {limit}; {kind} is a few lines")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # it may have grown since fstat
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {limit}; {kind} is a few lines")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error.reason}") from None


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


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts the nodes it composes, an alias at the size of what it
    expands to, and stops at ``MAX_NODES`` (``MAX_ALIASED_NODES`` through aliases): a few
    hundred bytes of nested aliases otherwise expand to billions of values. An alias to a
    node that is still being composed (a recursive structure) is refused too.

    Its booleans are YAML 1.1's, as Ruby's Psych reads them (a resque-scheduler file);
    ``_Loader`` below is the pool's, with YAML 1.2 booleans."""

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


class _Loader(BoundedLoader):
    """BoundedLoader with YAML 1.2 booleans: only true/false, so a queue named ``on``,
    ``yes`` or ``no`` stays a string key (YAML 1.1 would turn it into a boolean)."""


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


def parse_yaml(text: str, source: str = "", loader: type[BoundedLoader] | None = None) -> Any:
    """The document in ``text``, within the bounds above; ConfigError in one line.
    ``loader`` defaults to the pool's (YAML 1.2 booleans)."""
    try:
        return yaml.load(text, Loader=loader or _Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {clip(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
