"""The package's version: one place, read by the build (pyproject.toml), the ``--version``
option and the workers' Resque proclines (``resque-<version>: ...``)."""

__version__ = "0.1.0"
