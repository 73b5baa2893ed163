"""The README's test command runs two pytest-xdist workers with ``--dist loadgroup``; conftest.py puts every test
that uses a shared (session or module) fixture in that fixture's group so the fixture is built by one worker.
If the groups do not reach xdist's scheduler, nothing fails: every shared fixture (the digits run, module
supernets) is silently built once per worker. pytest 9.2 does that (pytest-xdist#1386: the ``@group`` suffix of
the node id is dropped), and so does a conftest hook that adds the marks after xdist has read them."""

import pytest


@pytest.fixture(scope="module")
def shared_value():
    return object()


def _loadgroup(request) -> bool:
    return bool(getattr(request.config.option, "loadgroup", False))


def test_a_shared_fixture_puts_its_tests_in_one_xdist_group(shared_value, request):
    group = "test_xdist_groups::shared_value"
    assert request.node.get_closest_marker("xdist_group").args == (group,)
    if _loadgroup(request):  # in an xdist worker: the scheduler groups by the node id's suffix
        assert request.node.nodeid.endswith(f"@{group}"), (
            f"{request.node.nodeid}: the xdist group did not reach the scheduler; pytest {pytest.__version__} "
            f"with this pytest-xdist does not group tests (pytest-xdist#1386): install the `test` extra's pytest<9.2")


def test_slow_tests_and_their_groups_are_collected_first(request):
    """conftest.py moves every test marked `slow`, with every test of its xdist group, before the others, keeping
    the collection order otherwise (xdist hands out work in that order: a long test collected last leaves one worker
    idle while the other finishes it)."""
    items = request.session.items

    def group(item):
        mark = item.get_closest_marker("xdist_group")
        return mark.args[0] if mark else item.nodeid

    slow = {group(i) for i in items if i.get_closest_marker("slow")}
    if not slow:
        pytest.skip("no test marked slow was collected (run with the whole suite)")
    flags = [group(i) in slow for i in items]
    first_fast = flags.index(False) if False in flags else len(flags)
    assert all(flags[:first_fast]) and not any(flags[first_fast:]), "a slow test's group comes after a fast test"
    # the digits run's group is slow (it trains the shared run): it is handed out first, whole
    if any(group(i) == "digits_run" for i in items):
        assert all(group(i) != "digits_run" for i in items[first_fast:])
    # otherwise the collection order (files in name order) is kept within each part
    for part in (items[:first_fast], items[first_fast:]):
        files = [i.nodeid.split("::")[0] for i in part]
        assert files == sorted(files), "the collection order changed within a part"
