"""The recipes of docs/deploy.md, exercised as far as this machine allows: the systemd unit
and the logrotate file are read by the tools that will read them (``systemd-analyze``,
``logrotate -d``) where installed, the Procfile's line runs a real pool with its YAML file
and ``WORKER_CONCURRENCY``, and the Kubernetes manifest's probe and ``preStop`` commands
run against a live pool of the same app."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
import yaml

from resque_pool import health, stop
from tests.support.common import ROOT, wait_until
from tests.support.processes import alive

DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def block(first_line: str) -> str:
    """The code block of docs/deploy.md whose first line is ``first_line``."""
    for _language, body in BLOCK.findall(DEPLOY):
        if body.splitlines()[0] == first_line:
            return body
    raise AssertionError(f"docs/deploy.md has no block starting {first_line!r}")


def test_the_systemd_unit_reloads_with_hup_and_stops_the_master_first(tmp_path):
    text = block("# /etc/systemd/system/resque-pool.service")
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd's keys are case-sensitive
    unit.read_string(text)
    service = unit["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "mixed"
    assert service["KillSignal"] == "SIGQUIT"
    assert int(service["TimeoutStopSec"]) >= 60
    assert "--daemon" not in service["ExecStart"]
    assert service["Type"] == "simple"
    if shutil.which("systemd-analyze") is None:
        return
    # The unit file as systemd reads it (its ExecStart binary need not exist here).
    path = tmp_path / "resque-pool.service"
    path.write_text(text.replace("/srv/myapp/venv/bin/python", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    complaints = [
        line
        for line in result.stderr.splitlines()
        if "resque-pool.service" in line and "User" not in line and "WorkingDirectory" not in line
    ]
    assert complaints == [], result.stderr


def test_logrotate_reads_the_rotation_and_sends_alrm(tmp_path):
    text = block("# /etc/logrotate.d/resque-pool")
    assert "--signal=ALRM" in text and "HUP" not in text
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed")
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "resque-pool.stdout.log").write_text("a line\n")
    config = tmp_path / "resque-pool"
    config.write_text(text.replace("/srv/myapp/shared/log", str(logs)))
    result = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def test_the_procfile_line_runs_the_pool_with_worker_concurrency(resque, tmp_path):
    [procfile] = [
        body.strip() for _language, body in BLOCK.findall(DEPLOY) if body.startswith("worker: ")
    ]
    command = procfile.removeprefix("worker: ")
    app = f"heroku-{uuid.uuid4().hex[:8]}"
    command = command.replace("--appname myapp", f"--appname {app}")
    command = command.replace("python manage.py", f"{shlex.quote(sys.executable)} manage.py")
    # The dyno's checkout: the project, with the recipe's YAML file beside it.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "resque-pool.yml").write_text(block("# config/resque-pool.yml"))
    (tmp_path / "manage.py").symlink_to(ROOT / "manage.py")
    env = resque.env(WORKER_CONCURRENCY="2")
    log = tmp_path / "dyno.log"
    with log.open("w") as handle:
        dyno = subprocess.Popen(
            ["bash", "-c", command],  # Heroku runs a Procfile line with bash
            cwd=tmp_path,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: len(resque.client.smembers(resque.key("workers"))) == 2,
            60,
            0.2,
            lambda: f"two workers on '*'\n{log.read_text()}",
        )
        assert {w.split(":", 2)[2] for w in resque.client.smembers(resque.key("workers"))} == {
            "*"
        }
        # Heroku's stop: TERM to every process of the dyno.
        os.killpg(dyno.pid, signal.SIGTERM)
        assert dyno.wait(30) == 0, log.read_text()
    finally:
        if dyno.poll() is None:
            os.killpg(dyno.pid, signal.SIGKILL)
            dyno.wait(10)


def test_the_kubernetes_probes_and_prestop_hook_answer_for_a_live_pool(
    resque, start_pool, tmp_path
):
    manifest = yaml.safe_load(block("# deployment.yaml"))
    spec = manifest["spec"]["template"]["spec"]
    [container] = spec["containers"]
    hook = container["lifecycle"]["preStop"]["exec"]["command"]
    grace = float(hook[hook.index("--grace-period") + 1])
    # The hook's wait and each job's TERM_CHILD time fit in the pod's grace period.
    assert spec["terminationGracePeriodSeconds"] > grace + 4
    assert {"name": "TERM_CHILD", "value": "1"} in container["env"]

    app = f"k8s-{uuid.uuid4().hex[:8]}"

    def run(command: list[str]) -> tuple[int, str]:
        argv = [arg.replace("myapp", app) for arg in command]
        argv = [sys.executable if arg == "python" else arg for arg in argv]
        env = resque.env()
        if "-m" in argv:  # the Django-free entry points need no settings
            env.pop("DJANGO_SETTINGS_MODULE")
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        return result.returncode, result.stdout.strip()

    config = tmp_path / "pool.yml"
    config.write_text("demo: 2\n")
    pool = start_pool("-c", str(config), "--appname", app, env={"TERM_CHILD": "1"})
    workers = pool.wait_for_workers({"demo": 2})
    code, line = run(container["livenessProbe"]["exec"]["command"])
    assert code == health.ALIVE, line
    code, line = wait_until(
        lambda: (answer := run(container["readinessProbe"]["exec"]["command"]))[0] == 0
        and answer,
        30,
        0.2,
        "ready",
    )
    assert line.startswith("ready: ")
    code, line = run(hook)
    assert code == stop.STOPPED, line
    assert not any(alive(pid) for pid in [pool.pid, *workers])
