"""A real Prometheus scrapes the metrics view of a real ``manage.py runserver``, and its HTTP
API then gives a queue's length equal to its ``LLEN`` and a failure counter that moved
after a failing job.

Needs Debian's ``prometheus`` binary (scripts/bootstrap.sh installs it as root); skipped
with the reason without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from resque_pool import enqueue, job
from resque_pool.worker.loop import Worker
from tests.support.common import ROOT, wait_until

PROMETHEUS = shutil.which("prometheus")
TOKEN = "prometheus-test-token"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="no prometheus binary (apt-get install --no-install-recommends prometheus)",
    ),
]


@job(queue="prom", name="PrometheusTestFails")
def fails():
    raise RuntimeError("meant to fail")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus scraping ``target`` every second; returns a query function."""
    started: list[subprocess.Popen] = []

    def start(target: str):
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: resque\n"
            "    metrics_path: /metrics/\n"
            "    authorization:\n"
            "      type: Bearer\n"
            f"      credentials: {TOKEN}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (kept for the test's life)
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: get(f"{base}/-/ready")[0] == 200,
            timeout=60,
            message=lambda: (
                f"Prometheus ready ({(tmp_path / 'prometheus.log').read_text()[-2000:]})"
            ),
        )

        def query(expression: str) -> list[dict]:
            address = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
            status, body = get(address)
            assert status == 200, (expression, body)
            return json.loads(body)["data"]["result"]

        def targets() -> str:
            return get(f"{base}/api/v1/targets")[1].decode()

        query.targets = targets  # type: ignore[attr-defined]
        return query

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def documented_promql() -> list[str]:
    """Every line of the ```promql blocks in docs/metrics.md."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    blocks = re.findall(r"^```promql\n(.*?)^```$", text, flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def scalar(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_scrapes_queue_lengths_and_failures(spawn_manage, prometheus, resque):
    port = free_port()
    server = spawn_manage(
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
        settings={"RESQUE_METRICS_TOKEN": TOKEN, "DEBUG": False},
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics/"

    def metrics_body() -> str:
        return get(metrics_url, {"Authorization": f"Bearer {TOKEN}"})[1].decode()

    wait_until(
        lambda: (
            get(metrics_url, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
            or server.poll() is not None
        ),
        timeout=60,
        message="runserver answering",
    )
    assert server.poll() is None, server.stdout.read()
    assert get(metrics_url)[0] == 401  # the guard holds for this server too

    enqueue("PrometheusTestFails", queue="prom")
    for _ in range(3):
        enqueue("PrometheusTestFails", queue="other")
    query = prometheus(f"127.0.0.1:{port}")

    llen = resque.client.llen(resque.key("queue", "other"))
    assert llen == 3
    wait_until(
        lambda: scalar(query('resque_queue_jobs{queue="other"}')) == llen,
        timeout=60,
        message=lambda: f"Prometheus holding the queue's length ({query.targets()})",
    )
    wait_until(
        lambda: scalar(query("resque_jobs_failed_total")) == 0,
        timeout=30,
        message="the failure counter at 0",
    )

    Worker("prom", interval=0, fork_per_job=False).work()  # the job fails

    wait_until(
        lambda: scalar(query("resque_jobs_failed_total")) == 1,
        timeout=60,
        message="the failure counter moved",
    )
    per_class = 'resque_job_failures_total{job_class="PrometheusTestFails"}'
    assert scalar(query(per_class)) == 1
    assert scalar(query('resque_queue_jobs{queue="prom"}')) in (0, 1)  # as of its last scrape

    # The PromQL docs/metrics.md gives an operator is valid for this Prometheus, and names
    # only series the view serves.
    expressions = documented_promql()
    assert len(expressions) >= 10
    families = set(re.findall(r"^# TYPE (resque_\w+) ", metrics_body(), re.M))
    served = families | {f"{name}_total" for name in families}
    served |= {f"{name}_{part}" for name in families for part in ("bucket", "count", "sum")}
    for expression in expressions:
        query(expression)  # a syntax error is a 400
        for name in re.findall(r"\bresque_\w+", expression):
            assert name in served, (name, expression)
