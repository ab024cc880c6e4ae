"""``report.md``: the run for people, next to ``summary.json`` (links relative to the run).

A header (profile, kernel, counts, how to finish an interrupted run), a table of notebooks,
then one section per notebook with what it recorded with :mod:`tlcourse.course.results`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...atomic import write_text as atomic_write_text
from .summary import NotebookResult, RunSummary, resume_command, where_stopped

REPORT_FILE = "report.md"
_STATUS_WORDS = {"ok": "ok", "failed": "**FAILED**", "interrupted": "**interrupted**"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value)
        if len(text) > 120:
            text = text[:117] + "..."
    else:
        text = str(value)
    return " ".join(text.replace("|", "\\|").split())


def _outcome_lines(result: NotebookResult, out: Path) -> list[str]:
    if result.status == "ok":
        return [f"**ok** in {result.seconds:.1f} s. Executed notebook: "
                f"[{result.output}]({result.output})"]
    word = "FAILED" if result.status == "failed" else result.status.upper()
    lines = [f"**{word}** after {result.seconds:.1f} s: `{result.error}`"]
    if (out / result.output).exists():
        lines.append(f"Partially executed notebook: [{result.output}]({result.output})")
    return lines


def _values_lines(values: dict[str, Any]) -> list[str]:
    if not values:
        return []
    return (["| result | value |", "| --- | --- |"]
            + [f"| {_cell(k)} | {_cell(v)} |" for k, v in values.items()] + [""])


def _run_lines(run: dict[str, Any]) -> list[str]:
    if not run:
        return []
    env = run.get("environment") or {}
    facts = [f"seed {run.get('seed')}", f"device {env.get('device', '?')}",
             f"torch {env.get('torch', '?')}", f"python {env.get('python', '?')}"]
    return ["Run: " + ", ".join(facts) + ".", ""]


def _figure_lines(result: NotebookResult) -> list[str]:
    base = Path(result.results_file).parent
    lines = []
    for name, filename in (result.results.get("figures") or {}).items():
        lines += [f"![{name}]({(base / filename).as_posix()})", ""]
    return lines


def report_section(result: NotebookResult, out: Path) -> list[str]:
    """One notebook's section: outcome, parameters, recorded values, run facts, figures."""
    lines = [f"## {result.name}", "", *_outcome_lines(result, out), ""]
    if result.parameters:
        passed = ", ".join(f"`{k}={v!r}`" for k, v in result.parameters.items())
        lines += [f"Parameters passed: {passed}", ""]
    values = result.results.get("values") or {}
    run = result.results.get("run") or {}
    lines += _values_lines(values) + _run_lines(run) + _figure_lines(result)
    if result.status == "ok" and not values and not run:
        lines += ["(No results recorded.)", ""]
    return lines


def status_counts(summary: Any, unstarted: str = "not started") -> str:
    """"3 ok, 1 failed[, 1 interrupted][, 2 <unstarted>]" for a run's or a sweep's summary."""
    statuses = [nb.status for nb in summary.notebooks]
    counts = f"{statuses.count('ok')} ok, {statuses.count('failed')} failed"
    if statuses.count("interrupted"):
        counts += f", {statuses.count('interrupted')} interrupted"
    if summary.not_started:
        counts += f", {len(summary.not_started)} {unstarted}"
    return counts


def _counts(summary: RunSummary) -> str:
    return status_counts(summary)


def _header(summary: RunSummary) -> list[str]:
    overrides = ", ".join(f"`{k}={v!r}`" for k, v in summary.parameters.items()) or "none"
    limit = f"{summary.timeout} s" if summary.timeout else "none"
    described = f" ({summary.description})" if summary.description else ""
    total = sum(nb.seconds for nb in summary.notebooks)
    lines = [
        f"# Course run {summary.started}",
        "",
        f"Profile **{summary.profile}**{described}.",
        f"Kernel `{summary.kernel}`, per-cell timeout {limit}, command-line overrides: "
        f"{overrides}.",
        "",
        f"**{_counts(summary)}**, {total:.1f} s in total.",
        "",
    ]
    if summary.resumed:
        lines += [f"Resumed {', '.join(summary.resumed)}.", ""]
    if summary.interrupted or summary.not_started:
        stopped = f"Stopped by Ctrl-C {where_stopped(summary)}. " if summary.interrupted else ""
        lines += [f"{stopped}Finish the run with `{resume_command(summary.out)}`: it reruns "
                  "only the notebooks that are not ok, with the same parameters.", ""]
    return lines


def _table(summary: RunSummary) -> list[str]:
    lines = ["| notebook | status | time (s) |", "| --- | --- | --- |"]
    lines += [f"| {nb.name} | {_STATUS_WORDS.get(nb.status, nb.status)} | {nb.seconds:.1f} |"
              for nb in summary.notebooks]
    lines += [f"| {name} | not started | |" for name in summary.not_started]
    return lines + [""]


def write_report(summary: RunSummary) -> Path:
    """Write ``report.md`` next to ``summary.json``: one section per notebook, links relative."""
    lines = _header(summary) + _table(summary)
    for result in summary.notebooks:
        lines += report_section(result, summary.out)
    return atomic_write_text("\n".join(lines).rstrip() + "\n", summary.out / REPORT_FILE)
