"""The Tasks backend's rough spots a new user met (issue 20): ids that are not strings,
a stored result naming a task this process does not know, and the system checks for a
missing ``resque_pool`` app (and, on Django 5.2, a missing ``django_tasks``), with real
Redis and real ``manage.py check`` processes."""

from __future__ import annotations

import django
import pytest
from django.core.exceptions import SuspiciousOperation

from resque_pool.tasks.compat import TaskResultDoesNotExist, task_backends
from testproject.demo import tasks as demo
from tests.support.common import ROOT


@pytest.mark.parametrize("result_id", [None, 123, "", b"abc"])
def test_an_id_that_is_not_a_string_does_not_exist(resque, result_id):
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result_id)


def test_a_result_naming_an_unknown_task_is_suspicious(resque):
    result = demo.add.enqueue(2, 3)
    record_key = resque.key("task-result", result.id)
    text = resque.client.get(record_key)
    resque.client.set(record_key, text.replace("testproject.demo.tasks.add", "gone.tasks.add"))
    with pytest.raises(SuspiciousOperation, match="its task 'gone.tasks.add' is not known"):
        task_backends["default"].get_result(result.id)
    # A real miss is still TaskResultDoesNotExist.
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("no-such-id")


NO_POOL_SETTINGS = """\
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"{framework}]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
ROOT_URLCONF = "{module}"
urlpatterns = []
USE_TZ = True
TASKS = {{"default": {{"BACKEND": "resque_pool.tasks.ResqueBackend"}}}}
"""

NO_FRAMEWORK_SETTINGS = """\
from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_tasks"]
"""


def check(run_manage, tmp_path, module: str, text: str):
    (tmp_path / f"{module}.py").write_text(text)
    return run_manage(
        "check",
        env={"DJANGO_SETTINGS_MODULE": module, "PYTHONPATH": f"{ROOT}:{tmp_path}"},
    )


def test_a_missing_resque_pool_app_is_reported(run_manage, tmp_path):
    framework = ', "django_tasks"' if django.VERSION < (6, 0) else ""
    module = "settings_without_resque_pool"
    text = NO_POOL_SETTINGS.format(framework=framework, module=module)
    if django.VERSION >= (6, 0):
        # Django 6 registers its task backends' checks when django.tasks is first imported,
        # as any project that defines a task does (no app does it on Django 6).
        text += "import django.tasks  # noqa: E402,F401\n"
    result = check(run_manage, tmp_path, module, text)
    assert result.returncode == 1
    assert (
        "(resque_pool.tasks.E003) TASKS['default'] uses resque_pool.tasks.ResqueBackend, but "
        "'resque_pool' is not in INSTALLED_APPS." in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(django.VERSION >= (6, 0), reason="Django 6 ships django.tasks: no app")
def test_a_missing_django_tasks_app_is_reported_on_django_5_2(run_manage, tmp_path):
    result = check(run_manage, tmp_path, "settings_without_django_tasks", NO_FRAMEWORK_SETTINGS)
    assert result.returncode == 1
    assert "(resque_pool.E006) TASKS['default'] uses resque_pool.tasks.ResqueBackend" in (
        result.stderr
    )
    assert "'django_tasks' (the backport of Django 6's tasks) is not in INSTALLED_APPS" in (
        result.stderr
    )


def test_the_test_project_passes_both_checks(run_manage):
    result = run_manage("check")
    assert result.returncode == 0, result.stderr
    assert "E003" not in result.stderr and "E006" not in result.stderr
