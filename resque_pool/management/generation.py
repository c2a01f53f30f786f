"""``python -m resque_pool.management.generation SPEC``: one generation of the pool.

The master (``pool/master.py``) starts it in a new interpreter, so that the application,
its settings and its installed packages are loaded afresh from disk. It loads Django (and
with it every jobs module), runs the app's system checks, and then runs ``manage.py
resque_pool`` with the arguments the pool was started with, as a generation: the command
loads the counts, says ready and manages the workers. Whatever fails before that (an
import, a check, the settings) becomes one line sent to the master, which logs it and
keeps the running generation.
"""

from __future__ import annotations

import json
import os
import sys

from resque_pool.pool.link import Link


class CheckFailed(Exception):
    """A system check of the new release failed (its message is the log line)."""


def describe_error(error: BaseException) -> str:
    """One line for the master's log: what failed to load, and where for a syntax error."""
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, SyntaxError):
        where = f" ({os.path.basename(error.filename or '?')}, line {error.lineno})"
        return f"{type(error).__name__}: {error.msg}{where}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def serious_check_errors() -> list[str]:
    from django.core import checks as django_checks  # noqa: PLC0415 (after django.setup())

    from resque_pool import checks  # noqa: PLC0415

    found = django_checks.run_checks(tags=[checks.TAG])
    return [f"{m.id}: {m.msg}" for m in found if m.is_serious() and not m.is_silenced()]


def boot(spec: dict) -> None:
    import django  # noqa: PLC0415 (inside the try of main: an import error is one line)

    django.setup()
    errors = serious_check_errors()
    if errors:
        raise CheckFailed(f"system check failed: {errors[0]}")


def main(argv: list[str] | None = None) -> int:
    encoded = (argv if argv is not None else sys.argv[1:])[0]
    spec = json.loads(encoded)
    sys.path[:] = list(dict.fromkeys([*spec["sys_path"], *sys.path]))
    try:
        if spec.get("cwd"):
            os.chdir(spec["cwd"])  # a symbolic link to the release now current
        boot(spec)
    except BaseException as error:  # noqa: BLE001 (anything the release raises)
        Link.from_fd(spec["fd"]).send({"failed": describe_error(error)})
        return 3
    from django.core.management import execute_from_command_line  # noqa: PLC0415

    execute_from_command_line(
        ["manage.py", "resque_pool", *spec["argv"], "--skip-checks", "--generation", encoded]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
