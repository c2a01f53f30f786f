"""End to end in a real headless browser: log in, edit a count, watch a running pool pick it
up on the live overview, retry a failed job. Saves the screenshots used in docs/admin.md.

Needs Debian's ``/usr/bin/chromium`` (or ``RESQUE_TEST_CHROMIUM``), driven by Playwright;
never run ``playwright install``. Screenshots go to a temporary directory, or to
``docs/img/`` when ``RESQUE_ADMIN_SCREENSHOTS=1`` (how the docs' pictures are refreshed).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from resque_pool import enqueue
from resque_pool.models import WorkerCount
from resque_pool.pool import state as pool_state
from resque_pool.resque import failures as failure
from tests.support.admin import publish_pool
from tests.support.common import wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM = (
    os.environ.get("RESQUE_TEST_CHROMIUM")
    or shutil.which("chromium")
    or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


def running_workers(queues: str) -> int:
    return sum(len((p.get("workers") or {}).get(queues, [])) for p in pool_state.all_pools())


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            yield page
        finally:
            browser.close()


def test_edit_count_watch_pool_and_retry_failure(
    live_server, browser_page, spawn_manage, database_env, resque, tmp_path
):
    page = browser_page
    shots = DOCS_IMG if os.environ.get("RESQUE_ADMIN_SCREENSHOTS") == "1" else tmp_path
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    WorkerCount.objects.create(queues="demo", count=1)
    WorkerCount.objects.create(queues="mail,reports", count=0)
    for n in range(3):
        enqueue("Record", f"later-{n}", queue="reports")
    pool = spawn_manage(
        "resque_pool",
        "--pool",
        "e2e",
        "--appname",
        "demo",  # not the checkout's directory name, which the docs' pictures would show
        "--no-pidfile",
        env={**database_env, "RESQUE_POOL_STATE_TTL": "10"},
    )
    wait_until(lambda: running_workers("demo") == 1, timeout=30, message="one demo worker")

    # A failure to retry later.
    enqueue("Fail", "boom from e2e")
    wait_until(lambda: failure.count() == 1, timeout=20, message="the failure")

    # Log in.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Resque dashboard")

    # Open the live overview first and keep it open: it must update without a reload.
    page.goto(f"{live_server.url}/admin/resque_pool/dashboard/")
    demo_running = page.locator('.pool-list[data-queues="demo"] .running')
    assert demo_running.inner_text() == "1"
    # A job that is running when the live part refreshes shows under "workers working".
    enqueue("Sleep", 4)
    page.wait_for_selector(".resque-working td >> text=Sleep", timeout=15_000)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Edit the count in a second tab (list_editable on the changelist).
    counts = page.context.new_page()
    counts.goto(f"{live_server.url}/admin/resque_pool/workercount/")
    row = counts.locator("#result_list tr", has_text="demo").first
    row.locator("input[name$='-count']").fill("2")
    counts.screenshot(path=str(shots / "worker-counts.png"), full_page=True)
    counts.click("input[name=_save]")
    counts.wait_for_selector("text=was changed successfully")
    assert WorkerCount.objects.get(queues="demo").count == 2
    counts.close()

    # The overview, never reloaded, shows the pool running two demo workers.
    page.wait_for_function(
        """() => {const el = document.querySelector('.pool-list[data-queues="demo"]');
                  return el && el.querySelector('.running').textContent.trim() === '2'
                         && el.querySelector('.count').textContent.trim() === '2';}""",
        timeout=30_000,
    )
    assert running_workers("demo") == 2
    # After live refreshes the clock is still the server's, with its zone.
    live_state = page.locator("#resque-live-state").inner_text()
    assert re.fullmatch(r"updated \d\d:\d\d:\d\d UTC", live_state), live_state

    # Queues and workers pages.
    page.goto(f"{live_server.url}/admin/resque_pool/dashboard/queues/")
    page.wait_for_selector("text=reports")
    page.screenshot(path=str(shots / "queues.png"), full_page=True)
    page.click("text=reports")
    page.wait_for_selector("text=later-2")
    page.screenshot(path=str(shots / "queue.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/resque_pool/dashboard/workers/")
    assert page.locator("table.resque-workers tbody tr").count() == 2
    page.screenshot(path=str(shots / "workers.png"), full_page=True)

    # Retry the failed job: it is pushed again, runs, and (Fail always fails) fails again.
    page.goto(f"{live_server.url}/admin/resque_pool/dashboard/failed/")
    page.wait_for_selector("text=boom from e2e")
    page.screenshot(path=str(shots / "failed.png"), full_page=True)
    page.click("input.retry")
    page.wait_for_selector("text=Retried failure #0")
    wait_until(lambda: failure.count() == 2, timeout=20, message="the retried job to run")
    assert failure.get(0).get("retried_at")
    page.reload()
    assert page.locator("li.failure").count() == 2
    assert page.locator("text=Retried 20").count() == 1

    assert pool.poll() is None, "the pool must still be running"


def test_dashboard_pages_look_like_the_admin(live_server, browser_page, resque):
    """The dashboard's own markup is styled by the admin's CSS of the running Django version
    (5.2 and 6.x style breadcrumbs and link-buttons differently)."""
    page = browser_page
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    enqueue("Record", "x", queue="reports")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Resque dashboard")

    def style(selector: str, prop: str, pseudo: str | None = None) -> str:
        return page.eval_on_selector(
            selector,
            "(el, [p, ps]) => getComputedStyle(el, ps).getPropertyValue(p)",
            [prop, pseudo],
        )

    # Django's own breadcrumbs, on the worker counts' changelist.
    page.goto(f"{live_server.url}/admin/resque_pool/workercount/")
    admin_bar = style(".breadcrumbs", "background-color")
    admin_link = style(".breadcrumbs a", "color")
    assert admin_bar not in ("", "rgba(0, 0, 0, 0)")

    page.goto(f"{live_server.url}/admin/resque_pool/dashboard/queues/reports/")
    assert style(".breadcrumbs", "background-color") == admin_bar
    assert style(".breadcrumbs a", "color") == admin_link
    crumbs = page.locator(".breadcrumbs li")
    assert crumbs.all_inner_texts()[-2:] == ["Queues", "reports"]
    # A separator after every crumb but the current page's.
    assert "\u203a" in style(".breadcrumbs li:first-child", "content", "::after")
    assert style(".breadcrumbs li:last-child", "content", "::after") in ("none", "normal")

    # Links drawn as buttons are not underlined like the text links around them.
    assert style("a.button.resque-danger", "text-decoration-line") == "none"
    page.click("text=Remove queue")
    page.wait_for_selector("a.cancel-link")
    assert style("a.cancel-link", "text-decoration-line") == "none"


def test_worker_counts_fit_a_1280_pixel_window(live_server, browser_page, resque):
    """The worker counts' changelist, with long queue lists, host names and every limit,
    needs no sideways scrolling at 1280x800: neither the page nor the table's own box
    (the admin lets ``.results`` scroll, so the page alone would not show it)."""
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    WorkerCount.objects.create(
        queues="default.high,default,default.low,mailers,reports",
        count=4,
        max_count=16,
        environment="production",
        pool="worker-host-01.example.com",
        job_timeout=300,
        max_jobs=1000,
        max_memory_mb=512,
    )
    WorkerCount.objects.create(
        queues="mailers,notifications.email,notifications.sms,webhooks",
        count=0,
        environment="staging",
        paused_count=3,
        max_jobs=250,
    )
    WorkerCount.objects.create(queues="reports,exports", count=120, pool="batch-02")
    WorkerCount.objects.create(queues="*,!slow", count=2)
    # The autoscaled row's pool, with its last decision and the reason for it.
    decision = {
        "at": "2026-12-07T17:32:03+00:00",
        "from": 4,
        "to": 16,
        "reason": "1000 jobs waiting (a 1/2 share), the oldest 12s, 4 busy, capped at the "
        "maximum 16",
    }
    publish_pool(
        "worker-host-01.example.com",
        "production",
        {"default.high,default,default.low,mailers,reports": list(range(100, 116))},
        autoscale={
            "default.high,default,default.low,mailers,reports": {
                "floor": 4,
                "max": 16,
                "target": 16,
                "decision": decision,
            }
        },
    )
    page.goto(f"{live_server.url}/admin/login/?next=/admin/resque_pool/workercount/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")

    widths = page.evaluate(
        """() => {const results = document.querySelector('#changelist-form .results');
                  return {page: document.documentElement.scrollWidth,
                          results: results.scrollWidth, box: results.clientWidth};}"""
    )
    assert widths["page"] <= 1280, widths
    assert widths["results"] <= widths["box"], widths
    # Nothing is hidden: every queue list and limit is there, and the counts can be edited.
    table = page.locator("#result_list").inner_text()
    for text in ("notifications.email", "worker-host-01.example.com", "max 512 MB", "(was 3)"):
        assert text in table, text
    assert page.locator("#result_list input[name$='-count']").count() == 4
