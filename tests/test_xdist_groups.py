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
