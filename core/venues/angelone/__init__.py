"""Angel One through smartapi-python: constants and limits, the guarded SDK, credentials,
error mapping, sessions and their pool, the instrument master, the adapter, the master's order
updates, the scheduler jobs and the driver.

Importing this package does not import the SDK: only the modules that need it do.
"""

from core.venues.angelone.driver import AngelOneDriver

__all__ = ["AngelOneDriver"]
