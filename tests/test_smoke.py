from resque_pool import enqueue


def test_enqueue_pushes_compact_payload(resque):
    pushed = enqueue("Record", "tok-é")
    assert pushed.queue == "demo"
    assert resque.client.lrange(resque.key("queue", "demo"), 0, -1) == [
        '{"class":"Record","args":["tok-é"]}'
    ]
    assert resque.client.smembers(resque.key("queues")) == {"demo"}
