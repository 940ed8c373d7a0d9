"""pytest plugin: count the cases hypothesis runs, for the figures of the provenance issue.

    PYTHONPATH=tests .venv/bin/pytest -p fuzz_count tests/data/test_fuzz.py -q

Wraps `hypothesis.given` before the test modules import it, so every execution of a
property (generated, shrunk or replayed) is counted, nested properties too (tests/data/test_fuzz.py
defines one per adapter inside a parametrized test). Prints the counts per test (adapter) and the
total at the end of the session. Not loaded by default; counts only, changes no result.
"""

from __future__ import annotations

import functools
from collections import Counter

import hypothesis

COUNTS: Counter = Counter()
_given = hypothesis.given
_current = {"test": "?"}


def _counting_given(*args, **kwargs):
    decorate = _given(*args, **kwargs)

    def apply(test):
        @functools.wraps(test)
        def counted(*a, **k):
            COUNTS[_current["test"]] += 1
            return test(*a, **k)

        return decorate(counted)

    return apply


hypothesis.given = _counting_given


def pytest_runtest_setup(item):
    _current["test"] = item.nodeid


def pytest_terminal_summary(terminalreporter):
    if not COUNTS:
        return
    terminalreporter.section("hypothesis cases run (fuzz_count)")
    for name, count in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{count:7d}  {name}")
    terminalreporter.write_line(f"{sum(COUNTS.values()):7d}  in all")
