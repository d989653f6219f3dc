"""Reproducible benchmarks of the copy fan-out: ``python -m bench --help`` (or ``copytrade bench``).

Every benchmark prints JSON; nothing in the test suite asserts a time. See docs/benchmarks.md.
"""
