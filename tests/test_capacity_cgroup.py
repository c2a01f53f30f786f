"""The container's memory limit (resque_pool/capacity/cgroup.py), read from fake /proc and
/sys trees in a temporary directory: cgroup v1 and v2, "no limit" in each, a cgroup
namespace, a parent's smaller limit, a hybrid machine, and files of another shape
(always "no limit" with a reason, never an exception)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resque_pool.capacity.cgroup import Limit, container_limit
from resque_pool.capacity.memory import MB, configured_budget

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_UNLIMITED = "9223372036854771712"


def fake(tmp_path: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    """A fake root: ``proc/self/{cgroup,mountinfo}`` and ``files`` (paths from the root)."""
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo)
    for name, text in files.items():
        path = tmp_path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def read(root: Path) -> Limit:
    return container_limit(root / "proc" / "self", root)


def test_v1_reads_the_memory_controllers_cgroup(tmp_path):
    root = fake(
        tmp_path,
        "5:cpu:/\n4:memory:/docker/abc\n0::/\n",
        V1_MOUNTS,
        {
            "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED + "\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1048576000\n",
        },
    )
    limit = read(root)
    assert (limit.bytes, limit.source, limit.problem) == (1048576000, "cgroup v1", None)
    assert limit.path.endswith("docker/abc/memory.limit_in_bytes")


def test_v1_near_two_to_the_63_is_no_limit(tmp_path):
    root = fake(
        tmp_path,
        "4:memory:/session\n",
        V1_MOUNTS,
        {
            "sys/fs/cgroup/memory/memory.limit_in_bytes": V1_UNLIMITED,
            "sys/fs/cgroup/memory/session/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert read(root) == Limit(None, "cgroup v1")


def test_v1_a_parents_smaller_limit_applies(tmp_path):
    root = fake(
        tmp_path,
        "4:memory,hugetlb:/pod/container\n",
        V1_MOUNTS.replace("rw,memory", "rw,memory,hugetlb"),
        {
            "sys/fs/cgroup/memory/pod/memory.limit_in_bytes": str(512 * MB),
            "sys/fs/cgroup/memory/pod/container/memory.limit_in_bytes": V1_UNLIMITED,
        },
    )
    assert read(root).bytes == 512 * MB


def test_v2_reads_memory_max(tmp_path):
    root = fake(
        tmp_path,
        "0::/system.slice/app.service\n",
        V2_MOUNTS,
        {"sys/fs/cgroup/system.slice/app.service/memory.max": f"{2048 * MB}\n"},
    )
    limit = read(root)
    assert (limit.bytes, limit.source) == (2048 * MB, "cgroup v2")


def test_v2_max_is_no_limit(tmp_path):
    root = fake(
        tmp_path,
        "0::/user.slice\n",
        V2_MOUNTS,
        {"sys/fs/cgroup/user.slice/memory.max": "max\n"},
    )
    assert read(root) == Limit(None, "cgroup v2")


def test_v2_root_cgroup_without_memory_max_is_no_limit(tmp_path):
    root = fake(tmp_path, "0::/\n", V2_MOUNTS, {"sys/fs/cgroup/cgroup.procs": "1\n"})
    assert read(root) == Limit(None, "cgroup v2")


def test_a_cgroup_namespace_falls_back_to_the_mount_root(tmp_path):
    """Inside a namespace /proc/self/cgroup may name a path the container cannot see (or
    "/"): the mount point is then the container's cgroup."""
    root = fake(
        tmp_path,
        "0::/../../kubepods/pod1/c1\n",
        V2_MOUNTS,
        {"sys/fs/cgroup/memory.max": f"{300 * MB}\n"},
    )
    assert read(root).bytes == 300 * MB
    v1 = tmp_path / "v1"
    v1.mkdir()
    root = fake(
        v1,
        "4:memory:/docker/0123abcd\n",
        V1_MOUNTS,
        {"sys/fs/cgroup/memory/memory.limit_in_bytes": f"{400 * MB}"},
    )
    assert read(root).bytes == 400 * MB


def test_a_mount_of_a_subtree_is_read_relative_to_its_root(tmp_path):
    """A mount whose root is ``/docker/abc`` shows that cgroup at the mount point."""
    mounts = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    root = fake(
        tmp_path,
        "4:memory:/docker/abc/inner\n",
        mounts,
        {
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{800 * MB}",
            "sys/fs/cgroup/memory/inner/memory.limit_in_bytes": f"{600 * MB}",
        },
    )
    assert read(root).bytes == 600 * MB


def test_a_hybrid_machine_reads_v1_where_the_memory_controller_is(tmp_path):
    """v1 controllers beside a v2 mount that has no memory controller (this machine)."""
    root = fake(
        tmp_path,
        "9:name=systemd:/\n4:memory:/job\n0::/\n",
        V1_MOUNTS,
        {"sys/fs/cgroup/memory/job/memory.limit_in_bytes": f"{700 * MB}"},
    )
    assert read(root) == Limit(
        700 * MB, "cgroup v1", str(root / "sys/fs/cgroup/memory/job/memory.limit_in_bytes")
    )


def test_mount_points_come_from_mountinfo_with_escapes(tmp_path):
    mounts = r"35 31 0:32 / /odd\040place/mem rw - cgroup cgroup rw,memory" + "\n"
    root = fake(
        tmp_path, "4:memory:/\n", mounts, {"odd place/mem/memory.limit_in_bytes": f"{100 * MB}"}
    )
    assert read(root).bytes == 100 * MB


@pytest.mark.parametrize(
    "cgroup, mountinfo, files, problem",
    [
        (
            "4:memory:/a\n",
            V1_MOUNTS,
            {"sys/fs/cgroup/memory/a/memory.limit_in_bytes": "lots"},
            "'lots'",
        ),
        ("0::/a\n", V2_MOUNTS, {"sys/fs/cgroup/a/memory.max": "-5\n"}, "'-5'"),
        ("0::/a\n", V2_MOUNTS, {"sys/fs/cgroup/a/memory.max": ""}, "''"),
        ("garbage without colons\n", V2_MOUNTS, {}, "unexpected line"),
    ],
)
def test_garbage_is_no_limit_with_a_reason(tmp_path, cgroup, mountinfo, files, problem):
    limit = read(fake(tmp_path, cgroup, mountinfo, files))
    assert limit.bytes is None
    assert problem in limit.problem
    assert "\n" not in limit.problem


def test_no_cgroup_mounts_or_no_proc_is_no_limit(tmp_path):
    root = fake(tmp_path, "0::/\n", "22 1 0:5 / /proc rw - proc proc rw\n", {})
    assert read(root) == Limit(None)
    missing = container_limit(tmp_path / "nowhere", tmp_path)
    assert missing.bytes is None and "cannot read" in missing.problem


def test_mountinfo_lines_of_another_shape_are_skipped(tmp_path):
    mounts = "short line\n\n99 1 0:1 / /x rw\n" + V2_MOUNTS
    root = fake(tmp_path, "0::/a\n", mounts, {"sys/fs/cgroup/a/memory.max": f"{MB}"})
    assert read(root).bytes == MB


# -- the budget made from the setting or the limit ----------------------------------------


def test_the_budget_is_the_setting_or_the_limit_less_ten_percent():
    limit = Limit(1000 * MB, "cgroup v2", "/sys/fs/cgroup/memory.max")
    assert configured_budget(None, lambda: limit).bytes == 900 * MB
    assert configured_budget(None, lambda: limit).source == "cgroup v2"
    assert configured_budget(500, lambda: limit).bytes == 500 * MB
    assert configured_budget(500, lambda: limit).source == "setting"
    off = configured_budget(0, lambda: limit)
    assert (off.bytes, off.source) == (None, "setting")
    none = configured_budget(None, lambda: Limit(None, "cgroup v1"))
    assert (none.bytes, none.source) == (None, "none")
    broken = configured_budget(None, lambda: Limit(None, "cgroup v1", problem="odd file"))
    assert broken.problem == "odd file"
