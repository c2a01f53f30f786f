"""The dashboard's rough spots a new user met (issue 20), in a real headless browser
(Debian's chromium through Playwright, as tests/test_admin_e2e.py): a space before the last
breadcrumb on every page, a sidebar that does not scroll sideways, and no "Pause all
workers" while they are paused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from resque_pool import enqueue
from resque_pool.resque.connection import get_redis, key
from tests.test_admin_e2e import CHROMIUM, browser_page  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]

GAPS = """() => {
  const items = [...document.querySelectorAll('.breadcrumbs li')];
  const gaps = [];
  for (let i = 1; i < items.length; i++) {
    // The separator is the previous crumb's ::after; the gap is between it and this crumb.
    const range = document.createRange();
    range.selectNodeContents(items[i]);
    const start = range.getClientRects()[0];
    const previous = items[i - 1].getBoundingClientRect();
    const sep = getComputedStyle(items[i - 1], '::after');
    gaps.push({crumb: items[i].innerText, gap: start.left - previous.right,
               marginRight: parseFloat(sep.marginRight), marginLeft: parseFloat(sep.marginLeft)});
  }
  return gaps;
}"""


def login(page, live_server) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/resque_pool/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("nav.resque-tabs")


def test_every_dashboard_page_spaces_its_last_breadcrumb_and_keeps_the_sidebar_still(
    live_server,
    browser_page,  # noqa: F811
    resque,
):
    page = browser_page
    enqueue("Record", "x", queue="reports")
    login(page, live_server)
    tabs = page.eval_on_selector_all("nav.resque-tabs a", "els => els.map(a => a.href)")
    assert len(tabs) >= 7
    # Pages with nested crumbs too: a queue's page, the keys under Stats.
    pages = [*tabs, f"{live_server.url}/admin/resque_pool/dashboard/queues/reports/"]
    pages.append(f"{live_server.url}/admin/resque_pool/dashboard/stats/keys/")
    checked = 0
    for href in pages:
        page.goto(href)
        gaps = page.evaluate(GAPS)
        assert gaps, href
        for gap in gaps:
            # The separator has room on both sides (a margin, not a space the browser drops).
            # (The separator's margin is inside the previous crumb's box, so the room after
            # it is that margin plus any white space between the crumbs.)
            assert gap["marginLeft"] > 2, (href, gap)
            assert gap["gap"] + gap["marginRight"] > 2, (href, gap)
        # The admin's navigation sidebar does not scroll sideways.
        sidebar = page.evaluate(
            """() => {const s = document.querySelector('#nav-sidebar');
                      return s ? {scroll: s.scrollWidth, client: s.clientWidth} : null;}"""
        )
        if sidebar is not None:
            assert sidebar["scroll"] <= sidebar["client"], (href, sidebar)
        checked += 1
    assert checked == len(pages)


def test_the_overview_offers_pause_only_while_not_paused(
    live_server,
    browser_page,  # noqa: F811
    resque,
):
    page = browser_page
    login(page, live_server)
    assert page.locator("text=Pause all workers…").count() == 1
    assert page.locator("text=Resume all workers…").count() == 0
    get_redis().set(key("pause-all-workers"), "true")
    page.reload()
    assert page.locator("text=Resume all workers…").count() == 1
    assert page.locator("text=Pause all workers…").count() == 0
    # The live refresh follows the state too: resumed elsewhere, the offer comes back.
    get_redis().delete(key("pause-all-workers"))
    page.wait_for_selector("text=Pause all workers…", timeout=20_000)
    assert page.locator("text=Resume all workers…").count() == 0
