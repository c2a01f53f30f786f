"""The Redis password never shows: Django's technical 500 page, the admins' e-mail report.

A view here fails with the password in its locals, in the settings and in ``request.META``
(where ``runserver`` puts the whole process environment); the project's
``DEFAULT_EXCEPTION_REPORTER_FILTER`` (``resque_pool.debug.SafeExceptionReporterFilter``)
must mask it everywhere.
"""

from __future__ import annotations

import pytest
from django.urls import path

from resque_pool.conf import settings as resque_settings
from resque_pool.debug import mask_url

SECRET = "s3cret-Pa55"
URL = f"redis://:{SECRET}@127.0.0.1:1/0"
DATABASE_URL = "postgres://app:dbpw-4242@db.example/app"
# What runserver copies from os.environ into request.META.
ENVIRONMENT = {"RESQUE_REDIS_URL": URL, "DATABASE_URL": DATABASE_URL}


def failing_view(request):
    url = resque_settings.RESQUE_REDIS_URL  # noqa: F841  (a local the page lists)
    connection_kwargs = {"host": "127.0.0.1", "password": SECRET}  # noqa: F841  (as redis-py's)
    auth_args = ("default", SECRET)  # noqa: F841
    raise RuntimeError("the dashboard broke")


urlpatterns = [path("boom/", failing_view)]


@pytest.fixture
def failing_site(client, settings):
    settings.RESQUE_REDIS_URL = URL
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False
    return client


def test_the_demo_project_uses_the_filter(settings):
    assert settings.DEFAULT_EXCEPTION_REPORTER_FILTER == (
        "resque_pool.debug.SafeExceptionReporterFilter"
    )


def test_technical_500_page_masks_the_redis_password(failing_site, settings):
    settings.DEBUG = True
    response = failing_site.get("/boom/", **ENVIRONMENT)
    body = response.content.decode()
    assert response.status_code == 500
    assert "the dashboard broke" in body and "RESQUE_REDIS_URL" in body  # Django's page
    assert SECRET not in body
    assert "dbpw-4242" not in body
    assert "redis://:********@127.0.0.1:1/0" in body
    assert "postgres://app:********@db.example/app" in body


def test_admin_email_report_masks_the_redis_password(failing_site, settings, mailoutbox):
    settings.DEBUG = False
    settings.ADMINS = [("ops", "ops@example.com")]
    response = failing_site.get("/boom/", **ENVIRONMENT)
    assert response.status_code == 500
    [mail] = mailoutbox
    assert "the dashboard broke" in mail.body and "RESQUE_REDIS_URL" in mail.body
    assert SECRET not in mail.body
    assert "dbpw-4242" not in mail.body
    assert "redis://:********@127.0.0.1:1/0" in mail.body


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://:pw@h:6379/0", "redis://:********@h:6379/0"),
        ("rediss://default:pw@h/1", "rediss://default:********@h/1"),
        ("redis://user:p@ss@h/0", "redis://user:********@h/0"),  # an unencoded "@"
        ("unix://:pw@/run/redis.sock?db=2", "unix://:********@/run/redis.sock?db=2"),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=********&db=1"),
        ("redis://pw@h/0", "redis://********@h/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_mask_url(url, shown):
    assert mask_url(url) == shown
