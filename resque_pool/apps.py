from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ResquePoolConfig(AppConfig):
    name = "resque_pool"
    verbose_name = "Resque pool"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register every installed app's jobs, as the admin autodiscovers admin.py.
        autodiscover_modules("jobs")
        from resque_pool.tasks import registry as tasks_registry

        tasks_registry.autodiscover()  # tasks modules too, when TASKS uses ResqueBackend
        from resque_pool import checks  # noqa: F401  (registers the system checks)
