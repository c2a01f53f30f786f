from django.apps import AppConfig, apps
from django.utils.module_loading import autodiscover_modules


class ResquePoolConfig(AppConfig):
    name = "resque_pool"
    verbose_name = "Resque pool"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register every installed app's jobs, as the admin autodiscovers admin.py.
        autodiscover_modules("jobs")
        from resque_pool.tasks import discovery as tasks_discovery

        tasks_discovery.autodiscover()  # tasks modules too, when TASKS uses ResqueBackend
        from resque_pool import checks  # noqa: F401  (registers the system checks)

        # Every admin page lives in the dashboard package, not in an app-level admin.py:
        # importing it registers the model admins, as the admin's autodiscovery would.
        if apps.is_installed("django.contrib.admin"):
            from resque_pool.dashboard import admin  # noqa: F401
