"""Sizing the local cluster (tlcourse/course/sweep/cluster.py)."""
from __future__ import annotations

import pytest

from tlcourse.course.sweep.cluster import KERNEL_MEMORY, local_layout
from tlcourse.errors import CourseError

_PLENTY = 64 * KERNEL_MEMORY


@pytest.mark.parametrize(("tasks", "workers", "cores", "memory", "expected"), [
    (4, None, 2, _PLENTY, (2, 1)),  # this machine: 2 workers, 1 torch thread each
    (1, None, 16, _PLENTY, (1, 16)),  # one task gets every core
    (6, None, 16, _PLENTY, (6, 2)),
    (40, None, 16, 4 * KERNEL_MEMORY, (4, 4)),  # memory caps the kernels
    (40, None, 16, KERNEL_MEMORY // 2, (1, 16)),
    (40, 3, 16, _PLENTY, (3, 5)),
])
def test_workers_times_torch_threads_never_exceed_the_cores(tasks, workers, cores, memory,
                                                            expected):
    layout = local_layout(tasks, workers, cores=cores, memory=memory)
    assert (layout.workers, layout.torch_threads) == expected
    assert layout.workers * layout.torch_threads <= cores


@pytest.mark.parametrize("workers", [0, -1, True, 2.0, 17])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(CourseError, match="--workers"):
        local_layout(4, workers, cores=16, memory=_PLENTY)


def test_a_scheduler_that_does_not_answer_is_refused_with_how_to_start_one():
    from tlcourse.course.sweep.cluster import connect

    with pytest.raises(CourseError, match="no Dask scheduler answered .*`dask scheduler`"):
        connect("tcp://127.0.0.1:9", timeout=2)
