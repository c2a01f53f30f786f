from django.apps import AppConfig


class DbJobsConfig(AppConfig):
    """A test-only app whose job reads the database, for the pool's fork-safety test."""

    name = "tests.dbjobs"
    label = "dbjobs"
