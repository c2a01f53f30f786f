"""Settings for the demo project; every deployment knob comes from the environment."""

import importlib.util
import os
import tempfile
from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, True),
    SECRET_KEY=(str, "demo-only-insecure-key-change-me"),
    RESQUE_REDIS_URL=(str, "redis://localhost:6379/0"),
    RESQUE_NAMESPACE=(str, "resque"),
    RESQUE_REDIS_SENTINELS=(list, []),
    RESQUE_REDIS_SENTINEL_SERVICE=(str, ""),
    RESQUE_REDIS_SENTINEL_PASSWORD=(str, ""),
    RESQUE_REDIS_SENTINEL_USERNAME=(str, ""),
    RESQUE_REDIS_CLUSTER=(bool, False),
    ALLOWED_HOSTS=(list, ["*"]),
)

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "resque_pool",
    "testproject.demo",
]

# Django's Tasks framework: built into Django 6, the django-tasks backport on Django 5.2.
if django.VERSION < (6, 0) and importlib.util.find_spec("django_tasks"):
    INSTALLED_APPS.append("django_tasks")
TASKS = {"default": {"BACKEND": "resque_pool.tasks.ResqueBackend", "QUEUES": ["default"]}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "testproject.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not SQLite's in-memory default, so that pool processes started by a test can
    # open the test database; one file per test run so parallel runs never meet.
    DATABASES["default"]["TEST"] = {
        "NAME": env(
            "RESQUE_TEST_SQLITE",
            default=os.path.join(tempfile.gettempdir(), f"resque-pool-test-{os.getpid()}.sqlite3"),
        )
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

RESQUE_REDIS_URL = env("RESQUE_REDIS_URL")
RESQUE_NAMESPACE = env("RESQUE_NAMESPACE")
# Redis Sentinel: RESQUE_REDIS_SENTINELS=host1:26379,host2:26379 and the master's name; unset,
# the URL's host and port are used.
RESQUE_REDIS_SENTINELS = env("RESQUE_REDIS_SENTINELS") or None
RESQUE_REDIS_SENTINEL_SERVICE = env("RESQUE_REDIS_SENTINEL_SERVICE") or None
RESQUE_REDIS_SENTINEL_PASSWORD = env("RESQUE_REDIS_SENTINEL_PASSWORD") or None
RESQUE_REDIS_SENTINEL_USERNAME = env("RESQUE_REDIS_SENTINEL_USERNAME") or None
# Redis Cluster: RESQUE_REDIS_CLUSTER=true, the URL naming one node, and a namespace with a
# hash tag (RESQUE_NAMESPACE={resque}).
RESQUE_REDIS_CLUSTER = env("RESQUE_REDIS_CLUSTER")
# "plain" or "json": JSON lines for a log collector (docs/settings.md).
RESQUE_LOG_FORMAT = env("RESQUE_LOG_FORMAT", default="plain")
# RESQUE_REDIS_URL may hold a password that Django's own filter would show on error pages
# and in the admins' e-mail reports.
DEFAULT_EXCEPTION_REPORTER_FILTER = "resque_pool.debug.SafeExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "pid": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "pid"}},
    "loggers": {
        "resque_pool": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")}
    },
}
