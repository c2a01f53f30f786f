"""Redis Cluster (``RESQUE_REDIS_CLUSTER``): a real 3-master cluster with a replica each
(tests/support/redis_cluster.py). Every script, transaction, pipeline and keyless command
of the package reaches the master serving the namespace's slot; a pool, its scheduler and
the admin go on when that master is SIGKILLed and its replica promoted. Skipped without
redis-server and redis-cli."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
import redis

import tests.support.failover_jobs  # noqa: F401  (FailoverRecord)
from resque_pool.resque import wire
from tests.support.common import wait_until
from tests.support.pool_fixtures import write
from tests.support.redis_cluster import RedisCluster, missing_binaries

pytestmark = pytest.mark.skipif(missing_binaries() is not None, reason=missing_binaries() or "")

WORKERS = 8
JOBS = 1000
JOB_SECONDS = 0.01
# What the docs state: work resumes within this long after the replica is promoted.
RESUME_BOUND = 10.0
# The injected replication lag: writes of the last LAG seconds before the kill are lost.
LAG = 0.5


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One cluster for the tests that kill nothing."""
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of the test's own, for a test that kills a node."""
    cluster = RedisCluster(tmp_path / "cluster")
    cluster.start()
    yield cluster
    cluster.stop()


def _use_cluster(settings, cluster: RedisCluster) -> str:
    """Point this process at ``cluster`` under a hash-tagged namespace of its own, through
    a master that does not serve the namespace (so it is found, not named, and survives
    when the test kills the namespace's master)."""
    from resque_pool.resque import connection

    namespace = f"{{test-{uuid.uuid4().hex[:8]}}}"
    owner = cluster.owner_of(namespace)
    entry = next(port for port in _masters(cluster) if port != owner)
    settings.RESQUE_REDIS_URL = cluster.url(entry)
    settings.RESQUE_REDIS_CLUSTER = True
    settings.RESQUE_NAMESPACE = namespace
    connection.reset_connections()
    return namespace


@pytest.mark.django_db(transaction=True)  # the in-process worker closes connections
def test_every_kind_of_command_reaches_the_namespaces_master(shared_cluster, settings):
    """Through a node that does not serve the namespace: scripts (the reserve, the mover,
    failure edits), MULTI/EXEC with WATCH (outcomes, retries), pipelines, blocking pops,
    and TIME, INFO, SCAN, PING all land on the namespace's master; the admin's pages too."""
    from resque_pool import Worker, enqueue
    from resque_pool.resque import failures
    from resque_pool.resque.connection import get_redis, key
    from resque_pool.resque.producer import enqueue_at
    from resque_pool.scheduler.mover import move_due
    from testproject.demo import tasks as demo
    from tests.support.admin import url, viewer_client

    cluster = shared_cluster
    namespace = _use_cluster(settings, cluster)
    owner = cluster.owner_of(namespace)
    master = cluster.node(owner)
    client = get_redis()
    assert client.info("server")["tcp_port"] == owner  # INFO, and so TIME, PING, CLIENT
    assert client.ping()
    assert client.time()[0] > 0

    enqueue("Record", "pushed")  # the wake-up pipeline
    enqueue("Fail", "boom")
    enqueue_at(time.time() + 2, "Record", "delayed")  # a transaction
    assert move_due(now=time.time() + 5).moved == 1  # the mover's scripts
    added = demo.add.enqueue(2, 3)  # the Tasks backend's transaction
    Worker("demo,default", interval=0, fork_per_job=False).work()  # reserve script, outcomes

    assert master.smembers(f"{namespace}:demo:done") == {"pushed", "delayed"}
    added.refresh()
    assert added.return_value == 5
    assert master.llen(f"{namespace}:failed") == 1
    failures.requeue(0)  # a failure edit's check-then-write script
    assert master.llen(f"{namespace}:queue:demo") == 1
    assert get_redis().blpop([key("queue", "demo")], timeout=1)  # a blocking pop
    assert {k for k in client.scan_iter(match=f"{namespace}:*")} == set(
        master.keys(f"{namespace}:*")
    )

    viewer = viewer_client()
    for page in ("changelist", "queues", "workers", "failed", "stats", "keys", "delayed"):
        response = viewer.get(url(page))
        assert response.status_code == 200, page
    assert str(owner) in viewer.get(url("stats")).content.decode()  # INFO's tcp_port


def test_the_tasks_backend_waits_for_a_replica_when_asked(shared_cluster, settings, caplog):
    """RESQUE_ENQUEUE_WAIT_REPLICAS: a task's record and job are on the replica when
    enqueue() returns; with the replica stopped, the wait ends at the time-out, logged, and
    the task is enqueued all the same."""
    from resque_pool.tasks import results
    from testproject.demo import tasks as demo

    cluster = shared_cluster
    ns = _use_cluster(settings, cluster)
    owner = cluster.owner_of(ns)
    replica_port = cluster.replica_of(owner)
    replica = cluster.node(replica_port)
    replica.execute_command("READONLY")  # a cluster replica serves reads only when asked
    settings.RESQUE_ENQUEUE_WAIT_REPLICAS = 1
    settings.RESQUE_ENQUEUE_WAIT_TIMEOUT = 5.0

    first = demo.add.enqueue(1, 2)
    # Read straight after: no wait for replication but the one enqueue() did.
    assert replica.exists(results.record_key(first.id))
    [queue] = replica.smembers(f"{ns}:queues")
    assert replica.llen(f"{ns}:queue:{queue}") == 1
    assert "replicas acknowledged" not in caplog.text

    settings.RESQUE_ENQUEUE_WAIT_TIMEOUT = 0.2
    stopped = cluster.nodes[replica_port]
    stopped.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        second = demo.add.enqueue(3, 4)
        waited = time.monotonic() - started
    finally:
        stopped.send_signal(signal.SIGCONT)
    assert waited >= 0.2
    assert "but only 0 of 1 replicas acknowledged it within 0.2s" in caplog.text
    assert cluster.node(owner).exists(results.record_key(second.id))


def test_a_key_outside_the_namespace_is_an_error_not_an_outage(shared_cluster, settings):
    from resque_pool.resque.connection import get_redis
    from resque_pool.resque.outages import is_unavailable

    namespace = _use_cluster(settings, shared_cluster)
    other = next(
        f"other-{n}"
        for n in range(1000)
        if shared_cluster.owner_of(f"other-{n}") != shared_cluster.owner_of(namespace)
    )
    with pytest.raises(redis.ResponseError) as raised:
        get_redis().get(other)
    assert not is_unavailable(raised.value)


def _runs(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        token, _, when = line.partition(" ")
        runs.append((token, float(when)))
    return runs


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lag", [0.0, LAG], ids=["in-sync", "replica-0.5s-behind"])
def test_a_pool_its_scheduler_and_the_admin_go_on_when_the_namespaces_master_dies(
    own_cluster, start_pool, run_manage, tmp_path, settings, process_settings, lag
):
    """8 workers drain 1,000 jobs under the requeue policy; once 300 ran, SIGKILL the master
    serving the namespace. Its replica is promoted; the same pool goes on within
    RESUME_BOUND, its scheduler child moves a job delayed after the kill, this process's
    enqueue() and admin reach the new master; every job ran, the ones run twice and the
    done markers lost with the dead master are counted.

    With ``lag``, the replica is cut off that long before the kill (its link dropped and
    its reconnection refused), so everything the pool wrote meanwhile existed only on the
    dead master: the reserves and outcomes of those jobs are lost, and the jobs run again."""
    from resque_pool import enqueue
    from resque_pool.resque.outages import is_unavailable
    from tests.support.admin import url, viewer_client

    cluster = own_cluster
    # The URL names a node that survives: a process started after the kill (manage.py
    # enqueue) must find the cluster through it.
    ns = _use_cluster(settings, cluster)
    owner = cluster.owner_of(ns)
    runs = tmp_path / "runs.txt"
    tokens = [f"a{n}" for n in range(JOBS)]
    env = {"RESQUE_REDIS_URL": settings.RESQUE_REDIS_URL, "RESQUE_NAMESPACE": ns}
    cluster_settings = {"RESQUE_REDIS_CLUSTER": True}
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", f"demo: {WORKERS}\n")),
        env={
            **env,
            "FORK_PER_JOB": "false",
            "INTERVAL": "0.1",
            "FAILOVER_RUNS": str(runs),
            **process_settings(
                base="tests.support.failover_settings",
                RESQUE_REQUEUE_DIRTY_JOBS=True,
                RESQUE_SCHEDULER=True,
                **cluster_settings,
            ),
        },
    )
    workers_before = set(pool.wait_for_workers({"demo": WORKERS}, timeout=60))
    wait_until(
        lambda: "resque-scheduler" in " ".join(pool.titles().values()), 60, message="scheduler"
    )

    master = cluster.node(owner)
    pipe = master.pipeline(transaction=False)
    pipe.sadd(f"{ns}:queues", "demo")
    for token in tokens:
        pipe.rpush(f"{ns}:queue:demo", wire.job_payload("FailoverRecord", [token, JOB_SECONDS]))
    pipe.execute()
    assert master.wait(1, 5000) == 1  # the replica has them before anything dies

    def ran() -> set[str]:
        return {token for token, _ in _runs(runs)}

    wait_until(
        lambda: len(ran()) >= 300, 60, 0.01, lambda: f"300 jobs (log:\n{pool.log()[-3000:]})"
    )
    cut = time.time()
    if lag:
        _cut_replica_off(cluster, owner)
        time.sleep(lag)
    killed = time.time()
    cluster.kill(owner)
    new_owner = cluster.wait_for_new_owner(ns, owner)
    promoted = time.time()
    new_master = cluster.node(new_owner)
    before = int(new_master.get(f"{ns}:stat:processed") or 0)
    wait_until(
        lambda: int(new_master.get(f"{ns}:stat:processed") or 0) > before,
        60,
        0.02,
        lambda: f"a job done on the new master (log:\n{pool.log()[-3000:]})",
    )
    resumed = time.time()

    # After the kill: a new process, this process's enqueue() (its client opened on the old
    # master), the scheduler child, and the admin.
    later = run_manage(
        "enqueue", "Record", "delayed", "--in", "1s", env=env, settings=cluster_settings
    )
    assert later.returncode == 0, later.stderr
    wait_until(lambda: _try(lambda: enqueue("Record", "after"), is_unavailable), 30, 0.2, "enqueue")
    wait_until(
        lambda: {"after", "delayed"} <= new_master.smembers(f"{ns}:demo:done"),
        60,
        message=lambda: f"the delayed and the new job (log:\n{pool.log()[-3000:]})",
    )

    def drained() -> bool:
        if new_master.llen(f"{ns}:queue:demo"):
            return False
        if any(new_master.exists(f"{ns}:worker:{w}") for w in new_master.smembers(f"{ns}:workers")):
            return False
        return ran() >= set(tokens)

    wait_until(drained, 90, 0.1, lambda: f"every job run (log:\n{pool.log()[-3000:]})")
    viewer = viewer_client()
    assert viewer.get(url("queues")).status_code == 200

    all_runs = _runs(runs)
    counts: dict[str, int] = {}
    for token, _ in all_runs:
        counts[token] = counts.get(token, 0) + 1
    twice = sorted(token for token, count in counts.items() if count > 1)
    lost_markers = sorted(set(tokens) - new_master.smembers(f"{ns}:demo:done"))
    failed = new_master.llen(f"{ns}:failed")
    in_window = {token for token, when in all_runs if cut <= when <= killed}
    print(
        f"\nreplica cut off {killed - cut:.2f}s before the kill, {len(in_window)} jobs ran "
        f"meanwhile\ncluster failover: promotion {promoted - killed:.2f}s after the kill, work "
        f"resumed {resumed - promoted:.2f}s after the promotion\njobs: {len(counts)} ran, "
        f"{len(twice)} ran twice, {len(lost_markers)} done markers lost with the dead "
        f"master, {failed} failed"
    )

    assert pool.process.poll() is None
    assert set(pool.wait_for_workers({"demo": WORKERS})) == workers_before
    assert resumed - promoted < RESUME_BOUND
    assert set(counts) >= set(tokens)
    assert failed == 0, new_master.lrange(f"{ns}:failed", 0, 2)
    last_run = {token: when for token, when in all_runs}
    for token in lost_markers:  # only markers written just before the kill
        assert last_run[token] <= killed + 0.5, token
    if lag:
        # What the lag costs, and only that: jobs run twice, each one that ran while only
        # the dead master heard of it (or was running at the cut).
        assert twice, "the cut-off replica lost no reserve or outcome"
        first_run = {}
        for token, when in all_runs:
            first_run.setdefault(token, when)
        for token in twice:
            assert cut - 1.0 <= first_run[token] <= killed + 0.5, token
    else:
        assert len(twice) <= 100, twice


def test_a_pool_follows_a_master_demoted_alive(
    own_cluster, start_pool, tmp_path, settings, process_settings
):
    """CLUSTER FAILOVER on the replica: the old master lives on as a replica and answers
    MOVED (a blocked pop is redirected or unblocked): the connections of the manager, the
    workers and their job children close, find the promoted replica and go on; nothing
    fails, nothing is left queued."""
    cluster = own_cluster
    ns = _use_cluster(settings, cluster)
    owner = cluster.owner_of(ns)
    replica = cluster.replica_of(owner)
    runs = tmp_path / "runs.txt"
    tokens = [f"m{n}" for n in range(300)]
    pool = start_pool(
        "-c",
        str(write(tmp_path / "pool.yml", "demo: 4\n")),
        "--no-scheduler",
        env={
            "RESQUE_REDIS_URL": settings.RESQUE_REDIS_URL,
            "RESQUE_NAMESPACE": ns,
            "FORK_PER_JOB": "true",  # job children too, each on the owner its worker knew
            "INTERVAL": "0.1",
            "FAILOVER_RUNS": str(runs),
            **process_settings(
                base="tests.support.failover_settings",
                RESQUE_REDIS_CLUSTER=True,
                RESQUE_REQUEUE_DIRTY_JOBS=True,
            ),
        },
    )
    workers_before = set(pool.wait_for_workers({"demo": 4}, timeout=60))
    master = cluster.node(owner)
    wait_until(lambda: len(master.smembers(f"{ns}:workers")) == 4, 30, message="workers registered")
    pipe = master.pipeline(transaction=False)
    pipe.sadd(f"{ns}:queues", "demo")
    for token in tokens:
        pipe.rpush(f"{ns}:queue:demo", wire.job_payload("FailoverRecord", [token, 0.02]))
    pipe.execute()
    wait_until(
        lambda: len(_runs(runs)) >= 50, 60, 0.01, lambda: f"50 jobs (log:\n{pool.log()[-3000:]})"
    )
    assert cluster.node(replica).execute_command("CLUSTER FAILOVER")
    assert cluster.wait_for_new_owner(ns, owner) == replica
    new_master = cluster.node(replica)

    def drained() -> bool:
        if new_master.llen(f"{ns}:queue:demo"):
            return False
        workers = new_master.smembers(f"{ns}:workers")
        if any(new_master.exists(f"{ns}:worker:{w}") for w in workers):
            return False
        return {token for token, _ in _runs(runs)} >= set(tokens)

    wait_until(drained, 60, 0.1, lambda: f"every job run (log:\n{pool.log()[-3000:]})")
    assert new_master.smembers(f"{ns}:demo:done") >= set(tokens)  # a manual failover loses none
    assert new_master.llen(f"{ns}:failed") == 0
    assert cluster.node(owner).info("replication")["role"] == "slave"
    assert pool.process.poll() is None
    assert set(pool.wait_for_workers({"demo": 4})) == workers_before


def _cut_replica_off(cluster: RedisCluster, master: int) -> None:
    """Replication lag, injected: the master's replica link is dropped, and the replica's
    reconnection refused (it now sends a password the master does not have), so the
    master acknowledges writes that no replica will ever have."""
    replica = cluster.replica_of(master)
    cluster.node(replica).config_set("masterauth", "not-the-masters-password")
    cluster.node(master).client_kill_filter(_type="replica")


def _masters(cluster: RedisCluster) -> set[int]:
    return {
        port
        for port in cluster.nodes
        if cluster.node(port).info("replication").get("role") == "master"
    }


def _try(call, is_unavailable):
    try:
        return call()
    except redis.RedisError as error:
        if not is_unavailable(error):
            raise
        return None
