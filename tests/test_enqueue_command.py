"""``manage.py enqueue`` as a user runs it: a real subprocess against real Redis."""

from __future__ import annotations

from resque_pool.management.commands.enqueue import parse_argument


def test_arguments_are_json_when_they_parse_else_strings():
    assert parse_argument("44") == 44
    assert parse_argument("true") is True
    assert parse_argument('{"a":[1]}') == {"a": [1]}
    assert parse_argument("masterbrew") == "masterbrew"
    assert parse_argument("") == ""
    for text in ("NaN", "Infinity", "-Infinity", "1e400"):
        assert parse_argument(text) == text
    assert parse_argument('{"a": NaN}') == '{"a": NaN}'


def test_enqueue_prints_queue_and_payload(resque, run_manage):
    result = run_manage("enqueue", "Sleep", "2.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "queue:   demo",
        'payload: {"class":"Sleep","args":[2.5]}',
    ]
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Sleep","args":[2.5]}'
    ]


def test_enqueue_to_another_queue_and_mixed_arguments(resque, run_manage):
    result = run_manage("enqueue", "Record", "tok", "--queue", "other")
    assert result.returncode == 0, result.stderr
    assert resque.client.lrange(resque.key("queue", "other"), 0, -1) == [
        '{"class":"Record","args":["tok"]}'
    ]


def test_unknown_job_is_a_clear_error(resque, run_manage):
    result = run_manage("enqueue", "NoSuchJob", "1")
    assert result.returncode == 1
    assert "no job is registered as 'NoSuchJob'" in result.stderr
    assert resque.client.keys(f"{resque.namespace}:*") == []


def test_unknown_job_with_queue_is_pushed_for_other_workers(resque, run_manage):
    result = run_manage("enqueue", "Ruby::Archive", "44", "--queue", "file_serve")
    assert result.returncode == 0, result.stderr
    assert resque.client.lindex(resque.key("queue", "file_serve"), 0) == (
        '{"class":"Ruby::Archive","args":[44]}'
    )


def test_unreachable_redis_is_one_line_without_the_password(resque, run_manage):
    url = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
    result = run_manage("enqueue", "Sleep", "1", env={"RESQUE_REDIS_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "CommandError: nothing enqueued: Redis at redis://:********@127.0.0.1:1/0: "
    )
    assert "Connection refused" in line


def test_unknown_job_error_names_the_command_line_option(resque, run_manage):
    result = run_manage("enqueue", "NoSuchJob")
    assert result.returncode == 1
    assert "give --queue QUEUE to push it" in result.stderr
    assert "queue=" not in result.stderr


def test_bad_queue_names_are_refused_as_yaml_and_the_admin_refuse_them(resque, run_manage):
    for queue, reason in [("", "empty"), ("a b", "whitespace"), ("a,b", "comma")]:
        result = run_manage("enqueue", "Sleep", "1", "--queue", queue)
        assert result.returncode == 1, (queue, result.stdout)
        [line] = result.stderr.splitlines()
        assert reason in line
    assert resque.client.keys(f"{resque.namespace}:*") == []


def test_arguments_that_do_not_fit_the_job_are_refused_before_pushing(resque, run_manage):
    result = run_manage("enqueue", "Sleep", "1", "2", "3")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: Sleep.perform(seconds=1) cannot take 3 argument(s) [1,2,3]: "
        "too many positional arguments"
    ]
    assert resque.client.keys(f"{resque.namespace}:*") == []


# -- the rough spots a new user met (issue 20) --------------------------------------------


def test_a_delay_past_the_calendar_is_one_line_and_exit_1(resque, run_manage):
    for option, value in (
        ("--in", "4000000d"),
        ("--in", "99999999999999999999d"),
        ("--at", "9999-12-31T23:59:59-01:00"),
    ):
        result = run_manage("enqueue", "Record", "x", option, value)
        assert result.returncode == 1, (value, result.stdout)
        assert "Traceback" not in result.stderr
        [line] = result.stderr.splitlines()
        assert line == (
            f"CommandError: {option} {value!r} is too far ahead (the latest is "
            "9999-12-31T23:59:59Z)"
        )
    assert resque.client.keys(f"{resque.namespace}:*") == []


def test_in_together_with_at_is_one_line(resque, run_manage):
    result = run_manage("enqueue", "Record", "x", "--in", "5m", "--at", "2030-01-01T00:00Z")
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert line == "CommandError: give --in or --at, not both"
    assert resque.client.keys(f"{resque.namespace}:*") == []


def test_an_argument_that_looks_like_json_but_is_not_warns_in_one_line(resque, run_manage):
    result = run_manage("enqueue", "Record", "[1,2")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line == (
        "warning: argument '[1,2' looks like JSON but is not (Expecting ',' delimiter); "
        "it is passed as a string"
    )
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Record","args":["[1,2"]}'
    ]
    # Plain strings and valid JSON say nothing.
    result = run_manage("enqueue", "Record", "masterbrew")
    assert result.returncode == 0 and result.stderr == ""
