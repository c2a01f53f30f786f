"""The dashboard's Delayed and Schedules pages (routed in ``urls.py``).

Delayed jobs are listed by time, a page of ``delayed_queue_schedule`` at a time, and each
time's items a page of ``delayed:<ts>`` at a time: nothing reads more than the page shown.
"Enqueue now" and "delete" act on one item, named by its position and checked against a
digest of its bytes, in one atomic script; they need ``change_dashboard``, are POSTs with
the CSRF token and go to the admin log. Permissions and methods are checked as for every
dashboard view (``base.page``/``base.action``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.models import CHANGE, DELETION
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_POST

from resque_pool.dashboard import base, data
from resque_pool.dashboard.paging import RedisList, Windowed, paginate
from resque_pool.models import Schedule
from resque_pool.resque import delayed
from resque_pool.resque.connection import get_redis
from resque_pool.resque.failures import entry_digest
from resque_pool.scheduler import mover, recurring

TIMES_PAGE = 50
ITEMS_PAGE = 50
GONE = "That delayed job is no longer there (moved or removed)."


def _times(start: int, count: int) -> list[dict[str, Any]]:
    """One page of ``delayed_queue_schedule``: one ZRANGE, then one pipeline for each
    time's size and first item."""
    stamps = delayed.timestamps(start, count)
    pipe = get_redis().pipeline(transaction=False)
    for stamp in stamps:
        pipe.llen(delayed.timestamp_key(stamp))
        pipe.lindex(delayed.timestamp_key(stamp), 0)
    replies = pipe.execute()
    rows = []
    for n, stamp in enumerate(stamps):
        size, first = replies[2 * n], replies[2 * n + 1]
        item = delayed.DelayedJob(stamp, "", first or "")
        rows.append({"stamp": stamp, "at": _at(stamp), "size": size, "first": item})
    return rows


def _at(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


@base.page
def delayed_list(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    times = Windowed(delayed.timestamp_count(), _times)
    shown, page = paginate(request, times, TIMES_PAGE)
    due = mover.due_timestamps(limit=1)
    return base.render(
        model_admin,
        request,
        "delayed.html",
        "Delayed jobs",
        "delayed",
        rows=list(shown.object_list),
        page=page,
        total=times.total,
        now=datetime.now(UTC),
        overdue=bool(due),
    )


def _stamp(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Http404("not a timestamp") from None


@base.page
def delayed_at(model_admin: ModelAdmin, request: HttpRequest, stamp: str) -> HttpResponse:
    ts = _stamp(stamp)
    items = RedisList(delayed.timestamp_key(ts))
    shown, page = paginate(request, items, ITEMS_PAGE)
    rows = []
    for index, raw in shown.object_list:
        job = delayed.DelayedJob(ts, "", raw)
        payload = job.payload
        rows.append(
            {
                "index": index,
                "digest": entry_digest(raw),
                "class": job.class_name,
                "args_text": data.pretty(job.args),
                "queue": payload.get("queue") if isinstance(payload, dict) else None,
                "raw": raw,
                "valid": job.class_name is not None,
            }
        )
    return base.render(
        model_admin,
        request,
        "delayed_at.html",
        f"Delayed at {_at(ts):%Y-%m-%d %H:%M:%S} UTC",
        "delayed",
        rows=rows,
        page=page,
        stamp=ts,
        at=_at(ts),
        list_key=f"delayed:{ts}",  # under the namespace, for the whole-value links
    )


@base.action(require_POST)
def delayed_action(model_admin: ModelAdmin, request: HttpRequest, stamp: str) -> HttpResponse:
    """POST ``index``, ``digest`` and ``action`` (``enqueue`` or ``delete``)."""
    ts = _stamp(stamp)
    back = HttpResponseRedirect(base.url("delayed_at", ts))
    action = request.POST.get("action")
    try:
        index = int(request.POST.get("index", ""))
    except ValueError:
        raise Http404("no item named") from None
    raw = get_redis().lindex(delayed.timestamp_key(ts), index)
    if raw is None or entry_digest(raw) != request.POST.get("digest"):
        messages.warning(request, GONE)
        return back
    job = delayed.DelayedJob(ts, "", raw)
    due = f"{_at(ts):%Y-%m-%d %H:%M:%S} UTC"
    what = f"{job.class_name or '(not a job)'}{data.pretty(job.args)} due {due}"
    if action == "enqueue":
        try:
            done = mover.take_one(ts, raw, enqueue=True)
        except ValueError as error:
            messages.error(request, f"Cannot enqueue {what}: {error}.")
            return back
        verb, flag = "Enqueued now", CHANGE
    elif action == "delete":
        done = mover.take_one(ts, raw, enqueue=False)
        verb, flag = "Deleted delayed job", DELETION
    else:
        raise Http404("unknown action")
    if not done:
        messages.warning(request, GONE)
        return back
    base.log_action(request, model_admin, f"{verb}: {what}", flag)
    messages.success(request, f"{verb}: {what}.")
    if not get_redis().exists(delayed.timestamp_key(ts)):
        return HttpResponseRedirect(base.url("delayed"))
    return back


@base.page
def schedules(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Recurring schedules with their last and next run, and who leads."""
    state = recurring.RunsState.read()
    lasts = state.lasts
    rows = []
    for schedule in Schedule.objects.all():
        upcoming, error = None, state.errors.get(schedule.name)
        if schedule.enabled and error is None:
            try:
                upcoming = recurring.next_run(schedule, state)
            except Exception as problem:  # noqa: BLE001 (one bad row never fails the page)
                error = recurring.describe(problem)
        rows.append(
            {
                "schedule": schedule,
                "last": lasts.get(schedule.name),
                "next": upcoming,
                "error": error if schedule.enabled else None,
            }
        )
    known = {row["schedule"].name for row in rows}
    return base.render(
        model_admin,
        request,
        "schedules.html",
        "Schedules",
        "schedules",
        rows=rows,
        leader=recurring.current_leader(),
        others=sorted((name, when) for name, when in lasts.items() if name not in known),
    )
