"""The chaos campaign (issue 15): the real copier process killed, faulted and checked against a
fake Binance running in a process of its own. ``python -m bench.chaos --help``."""
