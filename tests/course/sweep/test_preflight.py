"""What a worker lacks, in words (tlcourse/course/sweep/preflight.py)."""
from __future__ import annotations

import pytest

from tlcourse.course.sweep.preflight import check_workers
from tlcourse.errors import CourseError

_GOOD = {"host": "10.0.0.1", "cores": 8, "nthreads": 1, "problems": []}


class _Client:
    def __init__(self, facts):
        self.facts = facts

    def run(self, function, *args, on_error="raise"):
        assert on_error == "return"
        return self.facts


def test_torch_threads_share_each_hosts_cores_among_its_workers():
    client = _Client({"tcp://10.0.0.1:1": _GOOD, "tcp://10.0.0.1:2": _GOOD,
                      "tcp://10.0.0.2:1": {**_GOOD, "host": "10.0.0.2", "cores": 6}})
    assert check_workers(client, "tlcourse") == {
        "tcp://10.0.0.1:1": 4, "tcp://10.0.0.1:2": 4, "tcp://10.0.0.2:1": 6,
        "10.0.0.1": 4, "10.0.0.2": 6}


def test_each_worker_that_lacks_something_is_named_with_what_it_lacks():
    client = _Client({
        "tcp://10.0.0.1:1": _GOOD,
        "tcp://10.0.0.2:1": ModuleNotFoundError("No module named 'tlcourse'"),
        "tcp://10.0.0.3:1": {**_GOOD, "problems": ["dataset plantvillage: not found"]},
        "tcp://10.0.0.4:1": {**_GOOD, "nthreads": 4},
    })
    with pytest.raises(CourseError) as error:
        check_workers(client, "tlcourse")
    text = str(error.value)
    assert "3 of 4 Dask worker(s) cannot run the course, so nothing was submitted" in text
    assert "tcp://10.0.0.2:1: cannot import tlcourse" in text
    assert "tcp://10.0.0.3:1: dataset plantvillage: not found" in text
    assert "tcp://10.0.0.4:1: it runs 4 Dask threads; start it with `dask worker" in text
    assert "10.0.0.1" not in text


def test_a_cluster_without_workers_is_refused():
    with pytest.raises(CourseError, match="no workers"):
        check_workers(_Client({}), "tlcourse")
