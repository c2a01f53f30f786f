"""The Schedule changelist in a real headless browser (Debian's chromium through
Playwright, as tests/test_admin_e2e.py): it fits a 1280 px window, as the worker counts do,
with long names, zones, dotted job names, an error row and a damaged one."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import User

from resque_pool.scheduler.models import Schedule
from tests.test_admin_e2e import CHROMIUM, DOCS_IMG, browser_page  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]


def test_the_schedule_changelist_fits_a_1280_pixel_window(
    live_server,
    browser_page,  # noqa: F811
    resque,
    tmp_path,
):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    Schedule.objects.create(
        name="clear_leaderboards_contributors_weekly",
        cron="30 6 * * 1 America/Argentina/Buenos_Aires",
        time_zone="America/Argentina/Buenos_Aires",
        job_name="Ruby::Leaderboards::ClearContributorsLeaderboardJob",
        queue="leaderboards.maintenance.low_priority",
        args=["contributors", {"scope": "weekly"}],
        skip_if_queued=True,
    )
    Schedule.objects.create(
        name="every5", interval=5, job_name="testproject.demo.jobs.Record", args=["x"]
    )
    Schedule.objects.create(
        name="nightly_reports_rebuild_for_every_customer_account",
        cron="0 3 * * *",
        job_name="Noop",
        queue="reports.rebuild.nightly",
        enabled=False,
    )
    resque.client.hset(
        resque.key("delayed:last_enqueued_at"),
        "clear_leaderboards_contributors_weekly",
        "2026-11-30 06:30:00 -0300",
    )
    resque.client.hset(
        resque.key("resque_pool:schedule_errors"),
        "every5",
        "cannot compute its next run: OverflowError: date value out of range",
    )
    page.goto(f"{live_server.url}/admin/login/?next=/admin/resque_pool/schedule/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")

    widths = page.evaluate(
        """() => {const results = document.querySelector('#changelist-form .results');
                  return {page: document.documentElement.scrollWidth,
                          results: results.scrollWidth, box: results.clientWidth};}"""
    )
    shot = (DOCS_IMG if os.environ.get("RESQUE_ADMIN_SCREENSHOTS") else tmp_path) / (
        "schedules.png"
    )
    page.screenshot(path=str(shot), full_page=True)
    assert widths["page"] <= 1280, widths
    assert widths["results"] <= widths["box"], widths
    # Nothing is hidden: every name, zone, job, queue, the error and the times are there.
    table = page.locator("#result_list").inner_text()
    for text in (
        "clear_leaderboards_contributors_weekly",
        "America/Argentina/Buenos_Aires",
        "Ruby::Leaderboards::ClearContributorsLeaderboardJob",
        "leaderboards.maintenance.low_priority",
        "error: cannot compute its next run",
        "(disabled)",
        "2026-11-30",
        "09:30:00 UTC",
    ):
        assert text in table.replace("\u200b", ""), text
