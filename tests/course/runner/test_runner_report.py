"""report.md (tlcourse/course/runner/report.py), from the shared CLI run (conftest.py)."""
from __future__ import annotations


def test_report_has_a_section_per_notebook(cli_run):
    out = cli_run[1]
    report = (out / "report.md").read_text()
    assert "Profile **smoke**" in report and "`lr=0.5`" in report
    assert "**1 ok, 1 failed**" in report
    boom = report.index("## 00_boom.ipynb")
    alpha = report.index("## 01_alpha.ipynb")
    assert boom < alpha
    assert "**FAILED**" in report[boom:alpha] and "ZeroDivisionError" in report[boom:alpha]
    assert "| before_error | 1 |" in report[boom:alpha]
    section = report[alpha:]
    assert "**ok** in" in section
    assert "| lr | 0.5 |" in section and "| name | from-profile |" in section
    assert "![curve](01_alpha.curve.png)" in section
