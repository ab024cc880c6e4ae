"""Running the course: what a lesson does first, what it records, and ``tlcourse run``.

- :mod:`.lesson`: ``start_lesson``, the first cell after every lesson's parameters;
- :mod:`.params`: the types and ranges of the common notebook parameters;
- :mod:`.results`: the key results a notebook records for the runner's report;
- :mod:`.runner`: ``tlcourse run``, the notebooks executed with papermill.

Kept free of imports so that ``from tlcourse.course import results`` stays cheap (no torch).
"""
