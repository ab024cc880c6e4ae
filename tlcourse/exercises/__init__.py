"""The exercise engine: question banks (YAML data), widgets, code checkers and progress files.

In a notebook::

    from tlcourse.exercises import Exercises
    ex = Exercises.load("03_freezing", learner=learner, answers=answers)
    ex.ask("q1")
    ex.check_code("q5", model=model, optimizer=optimizer)
    ex.score()

- :mod:`.bank`: the YAML schema, validation and grading of choice / numeric / text questions;
- :mod:`.checkers`: code-exercise checkers, one module per lesson (``checkers.lesson03`` holds
  ``frozen_except_head`` ...), the generic ones in ``checkers.common``, the lookup in
  ``checkers.registry``; banks name a checker by its registered name alone;
- :mod:`.notebook`: :class:`Exercises`, interactive (ipywidgets) or headless (papermill);
- :mod:`.widgets`: the ipywidgets of one question;
- :mod:`.progress`: the learner's progress file, summaries and the class table;
- :mod:`.build`: solution notebooks -> student notebooks.

The banks themselves live in ``exercises/banks/`` (schema: ``exercises/README.md``).
"""
from .bank import Bank, BankError, Question, available_banks, banks_dir, find_bank, load_bank
from .checkers import CHECKERS, get_checker, register_checker
from .feedback import Feedback
from .notebook import Exercises, Score, is_exam, is_headless, load
from .progress import ProgressError, progress_path, read_entries

__all__ = [
    "Bank",
    "BankError",
    "CHECKERS",
    "Exercises",
    "Feedback",
    "ProgressError",
    "Question",
    "Score",
    "available_banks",
    "banks_dir",
    "find_bank",
    "get_checker",
    "is_exam",
    "is_headless",
    "load",
    "load_bank",
    "progress_path",
    "read_entries",
    "register_checker",
]
