"""Queue lists: static and dynamic resolution, Ruby ``File.fnmatch?`` semantics, errors."""

import pytest

from resque_pool.errors import NoQueueError
from resque_pool.resque.queue_resolution import QueueList, fnmatch

EXISTING = {"high", "low", "critical", "file_serve", "file_upload", "mail", "a/b", ".hidden"}


def test_static_list_is_used_as_given_even_for_missing_queues():
    queues = QueueList("high, low ,nonexistent")
    assert not queues.dynamic
    assert queues.resolve(EXISTING) == ["high", "low", "nonexistent"]
    assert queues.resolve() == ["high", "low", "nonexistent"]


def test_list_argument_and_comma_string_are_equivalent():
    assert QueueList(["high", "low"]).patterns == QueueList("high,low").patterns


def test_star_is_every_queue_sorted_without_dot_names():
    assert QueueList("*").resolve(EXISTING) == [
        "a/b",
        "critical",
        "file_serve",
        "file_upload",
        "high",
        "low",
        "mail",
    ]


def test_priority_then_rest_minus_negation():
    queues = QueueList("critical,*,!file_*")
    assert queues.dynamic
    assert queues.patterns == ["critical", "*"]
    assert queues.skip == ["file_*"]
    assert str(queues) == "critical,*"
    assert queues.resolve(EXISTING) == ["critical", "a/b", "high", "low", "mail"]


def test_each_pattern_expansion_is_sorted_then_flattened_and_uniqued():
    queues = QueueList("m*,*_upload,f*")
    assert queues.resolve(EXISTING) == ["mail", "file_upload", "file_serve"]


def test_literal_in_dynamic_list_only_when_the_queue_exists():
    queues = QueueList("nonexistent,high,*_serve")
    assert queues.resolve(EXISTING) == ["high", "file_serve"]


def test_negation_alone_makes_the_list_dynamic():
    queues = QueueList("high,nonexistent,!low")
    assert queues.dynamic
    assert queues.resolve(EXISTING) == ["high"]


def test_negation_applies_to_literal_entries_too():
    assert QueueList("high,low,!low").resolve(EXISTING) == ["high"]


def test_braces_are_not_expanded_but_make_the_list_dynamic():
    queues = QueueList("{high,low}")  # split on the comma first, like Ruby's split(',')
    assert queues.patterns == ["{high", "low}"]
    assert queues.dynamic
    assert queues.resolve(EXISTING | {"{high"}) == ["{high"]
    assert fnmatch("file_{serve,upload}", "file_{serve,upload}")
    assert not fnmatch("file_{serve,upload}", "file_serve")


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "a/b", True),  # no FNM_PATHNAME: * crosses "/"
        ("a?b", "a/b", True),
        ("*", ".hidden", False),  # no FNM_DOTMATCH: leading "." needs a literal "."
        ("?hidden", ".hidden", False),
        ("[.]hidden", ".hidden", False),
        (".*", ".hidden", True),
        ("\\.hidden", ".hidden", True),
        ("x*", "x.y", True),  # only a leading dot is special
        ("file_?erve", "file_serve", True),
        ("file_[su]*", "file_upload", True),
        ("file_[!s]*", "file_serve", False),
        ("file_[^s]*", "file_upload", True),
        ("q[0-9]", "q7", True),
        ("q[0-9]", "qa", False),
        ("q[9-0]", "q9", True),  # a reversed range still matches its end points
        ("q[9-0]", "q5", False),
        ("q[a-]", "q-", True),
        ("q[]", "q", False),
        ("q[", "q[", False),  # an unclosed bracket never matches
        ("q\\*", "q*", True),
        ("q\\*", "qx", False),
        ("High", "high", False),  # case-sensitive
        ("hi.h", "hixh", False),  # regex metacharacters are literal
        ("a+b", "a+b", True),
        ("line*", "line\nbreak", True),
    ],
)
def test_fnmatch_follows_ruby(pattern, name, matches):
    assert fnmatch(pattern, name) is matches


@pytest.mark.parametrize("queues", ["", " , ", [], ["!low"], "!low,!high"])
def test_no_queue_is_an_error(queues):
    with pytest.raises(NoQueueError, match=r"^Please give each worker at least one queue\.$"):
        QueueList(queues)
