"""Any ccxt exchange (Binance USD-M futures and spot first): constants, error mapping, shared
markets, request pacing, the adapter, the master's websocket listener and the driver."""

from core.venues.ccxt.driver import CcxtDriver

__all__ = ["CcxtDriver"]
