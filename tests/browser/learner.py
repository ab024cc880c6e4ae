"""What a learner does in JupyterLab, as Playwright steps: open, run all, answer, read, edit.

Only what a person can do with mouse and keyboard: menus, radio buttons, the *Check* button,
typing into a cell. Every wait is bounded, and a failed wait says what was on screen.
Each :meth:`Notebook.shot` writes a PNG under ``runs/browser/`` for a reviewer.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

_NUMBERED = re.compile(r"^\[\d+\]:$")
KERNEL_READY_S = 180  # a kernel start on a busy 2-core machine can take a minute
FEEDBACK_S = 60  # one comm round trip plus the check itself


class Notebook:
    """One open notebook in a JupyterLab tab, driven like a learner would."""

    def __init__(self, page: Page, shots: Path, prefix: str) -> None:
        self.page = page
        self.shots = shots
        self.prefix = prefix
        self.step = 0
        self.t0 = time.monotonic()
        shots.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ opening and running

    def open(self, url: str) -> "Notebook":
        """Open the notebook's address and wait for its kernel to be idle."""
        self.page.goto(url, timeout=KERNEL_READY_S * 1000)
        expect(self.page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=KERNEL_READY_S * 1000)
        self.wait_kernel_idle()
        self.page.keyboard.press("Control+b")  # hide the file browser: more room for the notebook
        expect(self.page.locator("#jp-left-stack")).to_be_hidden(timeout=10_000)
        return self

    def wait_kernel_idle(self, timeout: float = KERNEL_READY_S) -> None:
        """Until the notebook is loaded and its kernel started and idle.

        While JupyterLab loads, a placeholder with one empty cell and an "idle" indicator is
        on screen, so the status bar must name a kernel ("Python 3 (ipykernel) | Idle").
        """
        self.page.wait_for_function(
            """() => {
                const bar = document.querySelector('#jp-main-statusbar');
                const dot = document.querySelector('.jp-Notebook-ExecutionIndicator');
                const text = bar ? bar.innerText : '';
                return dot && dot.dataset.status === 'idle' && /\\| Idle/.test(text)
                    && !/No Kernel/.test(text);
            }""",
            timeout=timeout * 1000,
            polling=500,
        )

    def prompts(self) -> list[str]:
        """The execution prompts of every code cell, ``[3]:``, ``[*]:`` or ``[ ]:``."""
        return self.page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))"
            ".map(e => e.textContent.trim())"
        )

    def _status(self) -> str:
        return self.page.evaluate(
            "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status || ''"
        )

    def run_all(self, timeout: float) -> float:
        """Run > Run All Cells from the menu bar; wait until no cell is queued or running.

        Returns the seconds it took. A cell that raises stops the run (JupyterLab skips the
        rest), which :meth:`assert_every_cell_ran` then reports.
        """
        start = time.monotonic()
        before = self.prompts()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        item = self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
        expect(item).to_be_visible(timeout=10_000)
        item.click()
        self.wait_quiet(timeout, before, started=start)
        return time.monotonic() - start

    def wait_quiet(self, timeout: float, before: list[str], started: float | None = None) -> None:
        """Until the prompts have changed from ``before``, the kernel is idle and no prompt is
        ``[*]``: twice in a row, half a second apart."""
        deadline = (started or time.monotonic()) + timeout
        calm = 0
        while time.monotonic() < deadline:
            prompts, status = self.prompts(), self._status()
            done = prompts != before and status == "idle" and not any("*" in p for p in prompts)
            calm = calm + 1 if done else 0
            if calm >= 2:
                return
            time.sleep(0.5)
        self.shot("timeout")
        raise AssertionError(
            f"The notebook was still running (or never started) after {timeout:.0f} s: kernel "
            f"{self._status()!r}, prompts {self.prompts()}"
        )

    def assert_every_cell_ran(self) -> None:
        """Every code cell has an execution number and no output area shows a traceback."""
        prompts = self.prompts()
        not_run = [i for i, p in enumerate(prompts) if not _NUMBERED.match(p)]
        errors = self.error_texts()
        assert prompts and not not_run and not errors, (
            f"Code cells {not_run} of {len(prompts)} did not run (prompts {prompts}); "
            f"errors on screen: {errors}"
        )

    def error_texts(self) -> list[str]:
        """Exceptions shown in output areas, as the learner sees them (warnings are not)."""
        texts = self.page.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        ).all_inner_texts()
        return [t[:500] for t in texts
                if "Traceback (most recent call last)" in t or re.search(r"^\w+(Error|Exception)\b", t, re.M)]

    # ------------------------------------------------------------------ cells

    def code_cell(self, contains: str) -> Locator:
        """The code cell whose source contains ``contains`` (exactly one)."""
        cell = self.page.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea-editor", has_text=contains)
        )
        expect(cell).to_have_count(1, timeout=10_000)
        return cell

    def replace_cell_source(self, cell: Locator, source: str) -> None:
        """Click into the cell, select all, put ``source`` in (as a paste: no auto-indent)."""
        editor = cell.locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(source)
        expect(cell.locator(".jp-InputArea-editor")).to_contain_text(source.splitlines()[0])

    def run_cell(self, cell: Locator, timeout: float = 120) -> None:
        """Shift+Enter in the cell, then wait until its prompt shows a new number."""
        before = cell.locator(".jp-InputPrompt").inner_text().strip()
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")
        prompt = cell.locator(".jp-InputPrompt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = prompt.inner_text().strip()
            if _NUMBERED.match(now) and now != before and self._status() == "idle":
                return
            time.sleep(0.3)
        raise AssertionError(f"The cell did not finish within {timeout:.0f} s (prompt {prompt.inner_text()!r}).")

    def cell_output(self, cell: Locator) -> Locator:
        return cell.locator(".jp-OutputArea")

    # ------------------------------------------------------------------ question widgets

    def question(self, qid: str) -> "Question":
        box = self.page.locator(".jp-OutputArea-output .widget-vbox").filter(has_text=f"[{qid}]")
        expect(box).to_have_count(1, timeout=FEEDBACK_S * 1000)
        return Question(box)

    def question_boxes(self) -> Locator:
        return self.page.locator(".jp-OutputArea-output .widget-vbox").filter(
            has=self.page.locator(".widget-html-content b", has_text=re.compile(r"^\[.+\]$"))
        )

    # ------------------------------------------------------------------ screenshots

    def shot(self, name: str, element: Locator | None = None) -> Path:
        """A PNG of the window (scrolled to ``element``, if given) as the learner sees it now."""
        self.step += 1
        path = self.shots / f"{self.prefix}-{self.step:02d}-{name}.png"
        if element is not None:
            element.scroll_into_view_if_needed(timeout=10_000)
        self.page.screenshot(path=str(path))
        print(f"[{time.monotonic() - self.t0:6.1f} s] {path.name}")
        return path


def buttons(scope: Page | Locator, name: str) -> Locator:
    """Widget buttons labelled ``name`` (their icon is a CSS glyph, so the text is the label)."""
    return scope.locator("button.widget-button", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))


class Question:
    """One question's widgets: the input, *Check*, *Hint*, *Reveal solution*, feedback."""

    def __init__(self, box: Locator) -> None:
        self.box = box
        htmls = box.locator(":scope > .widget-html")
        self.feedback = htmls.nth(1)  # prompt, feedback, extra (hint / solution)
        self.extra = htmls.nth(2)

    def button(self, name: str) -> Locator:
        return buttons(self.box, name)

    def choose(self, label: str) -> None:
        """Click the radio button whose label is ``label`` (e.g. ``"a) nothing, ..."``)."""
        self.box.locator(".widget-radio-box label", has_text=label).locator("input").check()

    def select(self, labels: list[str]) -> None:
        """Select exactly these options of a multi-select list (the others unselected)."""
        self.box.locator("select").select_option(label=labels)

    def type_number(self, value: Any) -> None:
        field = self.box.locator("input[type=number]")
        field.fill(str(value))
        field.press("Enter")

    def check(self, expect_text: str) -> str:
        """Click *Check*; wait for feedback containing ``expect_text``; return the feedback."""
        self.button("Check").click()
        expect(self.feedback).to_contain_text(expect_text, timeout=FEEDBACK_S * 1000)
        return self.feedback.inner_text()
