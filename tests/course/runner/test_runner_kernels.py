"""The notebooks' kernels (tlcourse/course/runner/kernels.py)."""
from __future__ import annotations

from tlcourse.course.runner import TCP_WARNING, run_course


def test_kernel_tcp_warning_is_kept_off_the_terminal(python3_kernel, course, capfd):
    # The kernel writes it to its own stderr (file descriptor 2), so capture at fd level.
    summary = run_course(course, only="01", out=course / "out", kernel=python3_kernel,
                         progress=False)
    assert [nb.status for nb in summary.notebooks] == ["ok"]
    err = capfd.readouterr().err
    assert TCP_WARNING not in err and "without encryption" not in err
