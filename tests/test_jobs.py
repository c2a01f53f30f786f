"""The job registry, enqueue and Resque's job hooks (run in-process, against real Redis)."""

from __future__ import annotations

import pytest

from resque_pool import DontPerform, enqueue, job
from resque_pool.errors import BadArguments, MalformedPayload, NoQueueError, UnknownJob
from resque_pool.resque.jobs import Job, registry


@pytest.fixture
def calls():
    """A list the hook test jobs append to; the jobs registered here are removed after."""
    log: list = []
    before = set(registry.names())
    yield log
    for name in set(registry.names()) - before:
        registry.remove(name)


def test_function_job_registers_under_module_and_qualname(resque, calls):
    @job(queue="files")
    def archive(repo_id, branch="master"):
        calls.append((repo_id, branch))

    name = f"{__name__}.test_function_job_registers_under_module_and_qualname.<locals>.archive"
    assert archive.job_definition.name == name
    pushed = archive.enqueue(44, "masterbrew")
    assert pushed.queue == "files"
    raw = resque.client.lpop(resque.key("queue", "files"))
    assert raw == '{"class":"' + name + '","args":[44,"masterbrew"]}'
    assert Job.from_raw("files", raw).perform() is True
    assert calls == [(44, "masterbrew")]


def test_class_job_with_ruby_name_enqueues_by_name(resque, calls):
    @job(queue="file_serve", name="Archive")
    class Archive:
        @staticmethod
        def perform(repo_id, branch="master"):
            calls.append(repo_id)

    enqueue("Archive", 44, "masterbrew")
    assert resque.client.lrange(resque.key("queue", "file_serve"), 0, -1) == [
        '{"class":"Archive","args":[44,"masterbrew"]}'
    ]
    assert resque.client.smembers(resque.key("queues")) == {"file_serve"}


def test_payload_is_compact_utf8_with_class_then_args(resque, calls):
    @job(queue="q", name="Enc")
    class Enc:
        @staticmethod
        def perform(*args):
            pass

    Enc.enqueue(1, "two", {"three": 3.0, "four": None}, [True, False], "é/ü")
    raw = resque.client.lindex(resque.key("queue", "q"), 0)
    # The exact bytes Ruby's Resque writes for the same job (docs/wire-format.md, payload).
    assert raw == '{"class":"Enc","args":[1,"two",{"three":3.0,"four":null},[true,false],"é/ü"]}'


def test_enqueue_to_another_queue_and_unregistered_name_needs_queue(resque, calls):
    enqueue("Ruby::OnlyJob", 1, queue="ruby")
    assert resque.client.lrange(resque.key("queue", "ruby"), 0, -1) == [
        '{"class":"Ruby::OnlyJob","args":[1]}'
    ]
    with pytest.raises(UnknownJob, match="Ruby::OnlyJob"):
        enqueue("Ruby::OnlyJob", 1)


def test_job_without_queue_is_refused(resque, calls):
    @job(name="NoQueue")
    class NoQueue:
        @staticmethod
        def perform():
            pass

    with pytest.raises(NoQueueError):
        NoQueue.enqueue()
    NoQueue.enqueue_to("explicit")
    assert resque.client.llen(resque.key("queue", "explicit")) == 1


def test_arguments_must_be_json(resque, calls):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        enqueue("Record", object())
    assert resque.client.exists(resque.key("queue", "demo")) == 0


def test_duplicate_name_from_another_place_is_refused(calls):
    @job(queue="q", name="Dup")
    class One:
        @staticmethod
        def perform():
            pass

    with pytest.raises(ValueError, match="already registered"):

        @job(queue="q", name="Dup")
        class Two:
            @staticmethod
            def perform():
                pass


def test_enqueue_hooks_run_sorted_and_false_cancels(resque, calls):
    @job(queue="hooks", name="Hooked")
    class Hooked:
        @staticmethod
        def before_enqueue_b(x):
            calls.append("before_b")

        @staticmethod
        def before_enqueue_a(x):
            calls.append("before_a")
            return x != "cancel"

        @staticmethod
        def after_enqueue(x):
            calls.append("after")

        @staticmethod
        def perform(x):
            pass

    assert Hooked.enqueue("go") is not None
    assert calls == ["before_a", "before_b", "after"]
    calls.clear()
    assert Hooked.enqueue("cancel") is None
    assert calls == ["before_a", "before_b"]
    assert resque.client.llen(resque.key("queue", "hooks")) == 1


def _hooked_job(calls, *, fail=False, dont=False, around_yields=True):
    @job(queue="h", name="Perform")
    class Perform:
        @staticmethod
        def before_perform(x):
            calls.append("before")
            if dont:
                raise DontPerform()

        @staticmethod
        def around_perform_a(x):
            calls.append("around_a in")
            yield
            calls.append("around_a out")

        @staticmethod
        def around_perform_b(x):
            calls.append("around_b in")
            if around_yields:
                yield
            calls.append("around_b out")

        @staticmethod
        def after_perform(x):
            calls.append("after")

        @staticmethod
        def on_failure_log(error, x):
            calls.append(("failure", str(error), x))

        @staticmethod
        def perform(x):
            calls.append("perform")
            if fail:
                raise RuntimeError("boom")

    return Perform


def test_perform_hooks_order(calls):
    _hooked_job(calls)
    assert Job.from_raw("h", '{"class":"Perform","args":[1]}').perform() is True
    assert calls == [
        "before",
        "around_a in",
        "around_b in",
        "perform",
        "around_b out",
        "around_a out",
        "after",
    ]


def test_around_hook_that_does_not_yield_skips_the_job_but_after_runs(calls):
    _hooked_job(calls, around_yields=False)
    assert Job.from_raw("h", '{"class":"Perform","args":[1]}').perform() is False
    assert "perform" not in calls
    assert calls[-1] == "after"


def test_dont_perform_skips_quietly(calls):
    _hooked_job(calls, dont=True)
    assert Job.from_raw("h", '{"class":"Perform","args":[1]}').perform() is False
    assert calls == ["before"]


def test_failure_runs_on_failure_once_and_not_after(calls):
    _hooked_job(calls, fail=True)
    job_ = Job.from_raw("h", '{"class":"Perform","args":[7]}')
    with pytest.raises(RuntimeError, match="boom"):
        job_.perform()
    assert ("failure", "boom", 7) in calls
    assert "after" not in calls
    job_.run_failure_hooks(RuntimeError("again"))
    assert [c for c in calls if isinstance(c, tuple)] == [("failure", "boom", 7)]


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        ("not json at all", MalformedPayload, "not JSON"),
        ("[1,2]", MalformedPayload, "not a JSON object"),
        ('{"args":[1]}', MalformedPayload, "no 'class'"),
        ('{"class":"Record","args":{"a":1}}', MalformedPayload, "'args' must be a list"),
        ('{"class":"os.system","args":["echo hi"]}', UnknownJob, "os.system"),
        ('{"class":"Record","args":[1,2,3]}', BadArguments, "cannot take 3"),
    ],
)
def test_bad_payloads_give_clear_errors_and_import_nothing(raw, error, message):
    with pytest.raises(error, match=message):
        Job.from_raw("demo", raw).perform()


def test_missing_args_key_means_no_arguments(resque):
    Job.from_raw("demo", '{"class":"Noop"}').perform()


def test_demo_jobs_are_autodiscovered():
    for name in ("Noop", "Sleep", "Fail", "Record"):
        assert name in registry


def test_record_demo_job_writes_token(resque):
    Job.from_raw("demo", '{"class":"Record","args":["t1"]}').perform()
    assert resque.client.smembers(resque.key("demo", "done")) == {"t1"}


def test_enqueue_checks_arguments_against_the_signature_before_pushing(resque, calls):
    @job(queue="sig", name="Sig")
    class Sig:
        @staticmethod
        def perform(repo_id, branch="master"):
            pass

    @job(queue="sig", name="ClassSig")
    class ClassSig:
        @classmethod
        def perform(cls, *items, **options):
            pass

    @job(queue="sig")
    def keyword_only(a, *, b):
        pass

    with pytest.raises(BadArguments) as refused:
        Sig.enqueue(1, "two", 3)
    assert str(refused.value) == (
        "Sig.perform(repo_id, branch='master') cannot take 3 argument(s) [1,\"two\",3]: "
        "too many positional arguments"
    )
    with pytest.raises(BadArguments, match=r"^Sig\.perform\(repo_id, branch='master'\) .*"):
        enqueue("Sig")
    with pytest.raises(BadArguments, match=r"keyword_only\(a, \*, b\) cannot take 1"):
        keyword_only.enqueue(1)
    assert resque.client.exists(resque.key("queue", "sig"), resque.key("queues")) == 0
    # *args takes any number; a classmethod's cls is not an argument.
    ClassSig.enqueue()
    ClassSig.enqueue(1, 2, 3)
    Sig.enqueue(1)
    assert resque.client.llen(resque.key("queue", "sig")) == 3


def test_enqueue_refuses_queue_names_a_queue_list_could_not_hold(resque, calls):
    for bad, reason in [
        ("", "empty"),
        ("a b", "whitespace"),
        ("a,b", "comma"),
        ("!a", "negation"),
    ]:
        with pytest.raises(ValueError, match=reason):
            enqueue("Record", "t", queue=bad)
    with pytest.raises(ValueError, match="whitespace"):
        enqueue("Ruby::Job", queue="ruby jobs")
    assert resque.client.keys(f"{resque.namespace}:*") == []


def test_unknown_name_error_tells_a_python_caller_about_queue(resque):
    with pytest.raises(UnknownJob, match="pass queue= to push it"):
        enqueue("NoSuchJob")


def _takes(*args, **kwargs):
    pass


@pytest.mark.parametrize(
    "perform",
    [
        lambda: None,
        lambda a: None,
        lambda a, b=2: None,
        lambda a, /, b, c=3: None,
        lambda *args: None,
        lambda a, *args: None,
        lambda a, *args, b=1, **options: None,
        lambda a, *, b: None,
        lambda a=1, *, b=2: None,
        _takes,
    ],
)
def test_argument_check_agrees_with_bind_for_any_count(perform):
    # The check skips bind() when the count surely fits: never for a count bind refuses.
    import inspect

    from resque_pool.resque.registry import JobDefinition

    definition = JobDefinition(name="Arity", queue="q", target=perform)
    for count in range(5):
        args = list(range(count))
        try:
            inspect.signature(perform).bind(*args)
        except TypeError:
            with pytest.raises(BadArguments):
                definition.check_arguments(args)
        else:
            definition.check_arguments(args)


def test_hooks_added_or_replaced_after_a_run_are_found(calls):
    @job(queue="h", name="LateHooks")
    class LateHooks:
        @staticmethod
        def perform(x):
            calls.append("perform")

    raw = '{"class":"LateHooks","args":[1]}'
    assert Job.from_raw("h", raw).perform() is True
    LateHooks.before_perform_late = staticmethod(lambda x: calls.append("late"))
    assert Job.from_raw("h", raw).perform() is True
    LateHooks.before_perform_late = staticmethod(lambda x: calls.append("replaced"))
    assert Job.from_raw("h", raw).perform() is True
    del LateHooks.before_perform_late
    assert Job.from_raw("h", raw).perform() is True
    assert calls == ["perform", "late", "perform", "replaced", "perform", "perform"]


def test_prepare_looks_up_hooks_and_signature_once_and_skips_a_job_it_cannot_read(calls):
    """The manager prepares the registry before forking, so workers and job children find
    each job's hooks and signature already looked up; a job class whose attributes cannot
    be listed must not stop that (its own runs report it)."""

    @job(queue="h", name="Prepared")
    class Prepared:
        @staticmethod
        def before_perform_log(x):
            calls.append("before")

        @staticmethod
        def perform(x):
            calls.append(x)

    class Unlistable(type):
        def __dir__(cls):
            raise RuntimeError("no listing")

    unlistable = Unlistable("Unlistable", (), {"perform": staticmethod(print)})
    job(queue="h", name="Unlistable")(unlistable)
    registry.prepare()
    prepared = registry.get("Prepared")
    assert set(prepared._cache) >= {
        "before_perform",
        "around_perform",
        "after_perform",
        "on_failure",
    }
    looked_up = dict(prepared._cache)
    assert Job.from_raw("h", '{"class":"Prepared","args":[1]}').perform() is True
    assert calls == ["before", 1]
    assert all(prepared._cache[key] is entry for key, entry in looked_up.items())  # reused
