"""What a learner reads on stderr after a failed ``tlcourse`` command, for the tests that
promise "one clear line, no traceback" (tests/course/test_pack_files.py, tests/data/)."""
from __future__ import annotations

import re

_PROGRESS_BAR = re.compile(r"^\s*$|^[\w ]+:\s+\d+%\|")  # tqdm's lines (cleared on a terminal)


def error_lines(err: str) -> list[str]:
    """What a learner reads on stderr once the progress bars are gone; never a traceback."""
    assert "Traceback" not in err
    return [s for s in re.split(r"[\r\n]", err) if not _PROGRESS_BAR.match(s)]


def one_line_error(err: str) -> str:
    """The CLI's error: exactly one line, no traceback."""
    lines = error_lines(err)
    assert len(lines) == 1, err
    return lines[0]
