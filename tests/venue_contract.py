"""The behaviour every venue adapter must show, whatever the venue behind it.

An adapter's test module subclasses ``VenueContract`` and provides two fixtures: ``venue``
(an authenticated adapter with funds) and ``listed_symbol`` (a symbol it lists, with a
``price`` fixture giving a reference price there). See tests/test_paper_venue.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import InvalidOrder, UnknownSymbol
from core.model import CopyStatus, OrderIntent, Side
from core.sizing import fit_to_market


class VenueContract:
    @pytest.fixture
    def order_quantity(self):
        async def sized(venue, symbol: str, price: Decimal) -> Decimal:
            rules = await venue.market(symbol)
            quantity = fit_to_market(
                rules.min_notional / price * 2 + rules.min_quantity * rules.contract_size, rules, price
            )
            assert isinstance(quantity, Decimal)
            return quantity

        return sized

    async def test_lists_symbols_and_rules(self, venue, listed_symbol):
        assert listed_symbol in await venue.symbols()
        rules = await venue.market(listed_symbol)
        assert rules.symbol == listed_symbol
        assert rules.quantity_step > 0 and rules.price_tick > 0
        assert isinstance(rules.min_notional, Decimal)

    async def test_unknown_symbol_raises_unknown_symbol(self, venue):
        with pytest.raises(UnknownSymbol):
            await venue.market("NOPE/NOPE")

    async def test_equity_is_a_decimal(self, venue):
        assert isinstance(await venue.equity(), Decimal)

    async def test_market_order_carries_the_client_order_id_and_can_be_looked_up(
        self, venue, listed_symbol, price, order_quantity
    ):
        quantity = await order_quantity(venue, listed_symbol, price)
        ack = await venue.place_order(
            OrderIntent(1, "ctcontract00000000000000000000001", listed_symbol, Side.BUY, quantity)
        )
        assert ack.client_order_id == "ctcontract00000000000000000000001"
        assert ack.status in (CopyStatus.PLACED, CopyStatus.FILLED)
        found = await venue.fetch_order("ctcontract00000000000000000000001", listed_symbol)
        assert found is not None and found.venue_order_id == ack.venue_order_id

    async def test_lookup_of_an_unknown_client_order_id_is_none(self, venue, listed_symbol):
        assert await venue.fetch_order("ctnever0000000000000000000000000", listed_symbol) is None

    async def test_an_order_is_found_by_its_client_order_id_once_it_has_executed(
        self, venue, listed_symbol, price, order_quantity
    ):
        """What keeps a copy single: venues do not refuse a finished order's client id again
        (Binance: unique among open orders only, docs/research/binance.md §2; Angel One: no check
        on ordertag), so the engine looks the id up before any resend — and the look-up must find
        an order that has already executed."""
        quantity = await order_quantity(venue, listed_symbol, price)
        intent = OrderIntent(1, "ctcontract00000000000000000000002", listed_symbol, Side.BUY, quantity)
        placed = await venue.place_order(intent)
        found = await venue.fetch_order(intent.client_order_id, listed_symbol)
        assert found is not None
        assert found.client_order_id == intent.client_order_id
        assert found.venue_order_id == placed.venue_order_id

    async def test_filled_buy_shows_in_positions(self, venue, listed_symbol, price, order_quantity):
        quantity = await order_quantity(venue, listed_symbol, price)
        ack = await venue.place_order(
            OrderIntent(1, "ctcontract00000000000000000000003", listed_symbol, Side.BUY, quantity)
        )
        if ack.status is CopyStatus.FILLED:
            positions = {p.symbol: p.quantity for p in await venue.positions()}
            assert positions.get(listed_symbol, 0) >= quantity

    async def test_order_off_the_step_is_refused(self, venue, listed_symbol):
        rules = await venue.market(listed_symbol)
        with pytest.raises(InvalidOrder):
            await venue.place_order(
                OrderIntent(1, "ctcontract00000000000000000000004", listed_symbol, Side.BUY, rules.quantity_step / 3)
            )

    async def test_price_is_a_positive_decimal(self, venue, listed_symbol):
        price = await venue.price(listed_symbol)
        assert isinstance(price, Decimal) and price > 0

    async def test_cancelling_an_unknown_order_is_false(self, venue, listed_symbol):
        assert await venue.cancel_order("ctnever0000000000000000000000009", listed_symbol) is False
