"""resque-pool's YAML file: merging by environment, validation, ``${VAR}`` interpolation
and the file loader's caching."""

from __future__ import annotations

import pytest

from resque_pool.config_error import ConfigError
from resque_pool.pool.config import load_file, merge_environment, validate_counts
from resque_pool.pool.loaders import FileLoader
from resque_pool.yaml_file import interpolate, parse_yaml

# -- merging (resque-pool's FileOrHashLoader#apply_environment) -----------------------------

OBSERVED = {"foo": 1, "bar": 2, "production": {"foo": 5, "a,b": 3}, "staging": {"baz": 1}}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ("production", {"foo": 5, "bar": 2, "a,b": 3}),
        ("staging", {"foo": 1, "bar": 2, "baz": 1}),
        (None, {"foo": 1, "bar": 2}),
        ("development", {"foo": 1, "bar": 2}),  # no section: root only
    ],
)
def test_observed_merge_example(environment, expected):
    merged = merge_environment(OBSERVED, environment, "example")
    assert merged == expected
    # configuration order: root first, then the section's new keys
    assert list(merged) == list(expected)


def test_hash_spec_cases():
    config = {
        "foo": 8,
        "test": {"bar": 10, "foo,bar": 12},
        "development": {"baz": 14, "foo,bar": 16},
    }
    assert merge_environment(config, "test", "h") == {"foo": 8, "bar": 10, "foo,bar": 12}
    assert merge_environment(config, "development", "h") == {"foo": 8, "foo,bar": 16, "baz": 14}
    assert merge_environment(config, None, "h") == {"foo": 8}
    # the caller's mapping is never mutated (resque-pool's shallow-copy surprise)
    assert config["test"] == {"bar": 10, "foo,bar": 12}


def test_plain_hash_keeps_every_list():
    config = {"foo": 1, "bar": 2, "foo,bar": 3, "bar,foo": 4}
    assert merge_environment(config, "development", "h") == config


SPEC_FILE = """\
foo: 1

production:
  "foo,bar": 10

development:
  "foo,bar": 4
  "baz": 23

test:
  "bar": 5
  "foo,bar": 3
"""


def test_spec_file(tmp_path):
    path = tmp_path / "resque-pool.yml"
    path.write_text(SPEC_FILE)
    assert load_file(str(path), "test") == {"foo": 1, "bar": 5, "foo,bar": 3}
    assert load_file(str(path), "development") == {"foo": 1, "foo,bar": 4, "baz": 23}
    assert load_file(str(path), None) == {"foo": 1}


def test_nested_mappings_are_dropped_and_count_zero_kept():
    config = parse_yaml("foo: 0\nbar: 2\nnested: {deep: 1}\nproduction:\n  other: {x: 1}\n")
    assert merge_environment(config, "production", "f") == {"foo": 0, "bar": 2}


def test_queue_lists_are_normalised_before_merging():
    config = parse_yaml('"foo,bar": 1\nproduction:\n  "foo, bar": 4\n')
    assert merge_environment(config, "production", "f") == {"foo,bar": 4}


def test_yaml_11_booleans_stay_queue_names():
    assert merge_environment(parse_yaml("on: 1\nyes: 2\nno: 3\n"), None, "f") == {
        "on": 1,
        "yes": 2,
        "no": 3,
    }


def test_integer_keys_become_queue_names():
    assert merge_environment(parse_yaml("1: 2\n"), None, "f") == {"1": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo: [\n", "not valid YAML"),
        ("- foo\n- bar\n", "expected a mapping"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ('foo: "2"\n', "must be an integer >= 0, got '2'"),
        ("foo: true\n", "must be an integer >= 0, got True"),
        ("foo: -1\n", "must be an integer >= 0, got -1"),
        ("foo:\n", "must be an integer >= 0, got None"),
        ("foo: 1.5\n", "must be an integer >= 0, got 1.5"),
        ('"foo,,bar": 1\n', "empty queue name"),
        ('"": 1\n', "Give at least one queue name"),
        ('"foo bar": 1\n', "contains whitespace"),
        ('"foo,bar": 1\n"foo, bar": 2\n', "given twice"),
        ("true: 1\n", "is not a queue list"),
    ],
)
def test_invalid_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "pool.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_file(str(path), None)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_file(str(tmp_path / "nope.yml"), None)


def test_validate_counts_for_loader_results():
    assert validate_counts({"a, b": 2, "c": 0}, "loader") == {"a,b": 2, "c": 0}
    for bad in ({"a": True}, {"a": "1"}, {"a": -2}, {" ": 1}, ["a"], None):
        with pytest.raises(ConfigError):
            validate_counts(bad, "loader")


# -- interpolation (in place of ERB) --------------------------------------------------------


def test_interpolation():
    environ = {"COUNT": "3", "EMPTY": "", "QUEUE": "mail"}
    text = "${QUEUE}: ${COUNT}\nx: ${MISSING:-2}\ny: ${EMPTY:-4}\nz: $${LITERAL}\n# ${UNSET}\n"
    assert interpolate(text, environ) == "mail: 3\nx: 2\ny: 4\nz: ${LITERAL}\n# ${UNSET}\n"


def test_interpolation_of_unset_variable_is_an_error():
    with pytest.raises(ConfigError, match=r"pool.yml:2: environment variable NOPE is not set"):
        interpolate("a: 1\nb: ${NOPE}\n", {}, "pool.yml")


def test_interpolated_file(tmp_path, monkeypatch):
    # resque-pool's spec-custom.yml.erb: "foo: <%= 1+1 %>" loads as {"foo" => 2}
    path = tmp_path / "custom.yml"
    path.write_text("foo: ${POOL_TEST_FOO:-2}\nproduction:\n  ${POOL_TEST_Q:-bar}: 1\n")
    monkeypatch.delenv("POOL_TEST_FOO", raising=False)
    assert load_file(str(path), None) == {"foo": 2}
    monkeypatch.setenv("POOL_TEST_FOO", "7")
    monkeypatch.setenv("POOL_TEST_Q", "mail")
    assert load_file(str(path), "production") == {"foo": 7, "mail": 1}


# -- the file loader's caching -------------------------------------------------------------


def test_file_loader_reads_again_only_after_reset(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("orig: 1\n")
    loader = FileLoader(str(path))
    assert loader.load(None).counts == {"orig": 1}
    path.write_text("changed: 1\n")
    assert loader.load(None).counts == {"orig": 1}  # "should not automatically load the changes"
    loader.reset()
    assert loader.load(None).counts == {"changed": 1}  # "should reload the changes on HUP signal"


def test_file_loader_caches_a_failure_until_reset(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("foo: [\n")
    loader = FileLoader(str(path))
    with pytest.raises(ConfigError):
        loader.load(None)
    path.write_text("foo: 1\n")
    with pytest.raises(ConfigError):  # not re-read every second
        loader.load(None)
    loader.reset()
    assert loader.load(None).counts == {"foo": 1}


def _traceback_length(error: BaseException) -> int:
    length, tb = 0, error.__traceback__
    while tb is not None:
        length, tb = length + 1, tb.tb_next
    return length


def test_a_cached_failure_does_not_grow_with_each_raise(tmp_path):
    """The manager asks every second; each raise must not keep the ones before it."""
    path = tmp_path / "pool.yml"
    path.write_text("foo: [\n")
    loader = FileLoader(str(path))
    seen = []
    for _ in range(50):
        try:
            loader.load(None)
        except ConfigError as error:
            seen.append((_traceback_length(error), error.__context__, error.__cause__))
    assert len(seen) == 50
    assert seen[-1] == seen[0]
    assert seen[0][1] is None and seen[0][2] is None


# -- hostile files: nothing may eat the machine or hang the manager -----------------------


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level lists the one before nine times (9**9 leaves)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 600
    with pytest.raises(ConfigError, match="alias") as caught:
        load_file(str(path), None)
    assert len(str(caught.value)) < 300 and str(path) in str(caught.value)


def test_aliases_within_the_bound_still_work(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("defaults: &defaults\n  mail: 1\nproduction:\n  <<: *defaults\n  foo: 2\n")
    assert load_file(str(path), "production") == {"mail": 1, "foo": 2}


def test_a_recursive_alias_is_a_one_line_error(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("foo: &a [1, *a]\n")
    with pytest.raises(ConfigError) as caught:
        load_file(str(path), None)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path, device):
    path = tmp_path / "pool.yml"
    path.symlink_to(device)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_file(str(path), None)


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_file(str(tmp_path), None)


def test_a_file_over_one_mebibyte_is_refused(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("# padding\n" * 110_000)  # a valid (empty) YAML document of 1.1 MB
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_file(str(path), None)


def test_a_file_with_too_many_entries_is_refused_early(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("".join(f"q{number}: 0\n" for number in range(20_000)))
    with pytest.raises(ConfigError, match="too many"):
        load_file(str(path), None)


def test_deep_nesting_is_a_one_line_error(tmp_path):
    path = tmp_path / "pool.yml"
    path.write_text("foo: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_file(str(path), None)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "foo: " + "x" * 100_000 + "\n",  # a huge value
        '"' + "a b" * 50_000 + '": 1\n',  # a huge invalid key
        '"' + "a" * 100_000 + ',,": 1\n',
        "${" + "V" * 100_000 + "}: 1\n",  # a huge unset variable name
    ],
)
def test_error_messages_quote_a_bounded_amount(tmp_path, text):
    path = tmp_path / "pool.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_file(str(path), None)
    assert len(str(caught.value)) < 300 + len(str(path))


def test_validate_counts_quotes_a_bounded_amount():
    with pytest.raises(ConfigError) as caught:
        validate_counts({"foo": list(range(100_000))}, "loader")
    assert len(str(caught.value)) < 300
