"""The in-process simulated venue: the exchange and its accounts, their fill stream, a
simulated master trader for the demo, and the driver."""

from core.venues.paper.driver import PaperDriver

__all__ = ["PaperDriver"]
