"""Copying a master's fills, one engine per job (as nautilus_trader divides its engines):

- ``planner``: pure — a fill, a follow and its position become an order to send, or a skip;
- ``positions``: the copied positions exits are sized against, read from the journal's ledger;
- ``sender``: the **only** code that sends, resends or cancels an order; it proves a lost order
  can no longer execute before it sends it again, and fences every send in the database;
- ``recorder``: outcomes journaled and notified once;
- ``copier``: a fill fanned out to its follows, in fill order per follow and symbol;
- ``settler``: copies whose outcome is unknown, after a restart and periodically;
- ``tracker``: open copies followed to their end (resting limits, protected limits re-priced);
- ``direct``: orders the copier decides itself (take-profit, stop-loss, sync, open, close).

``core.engine.CopyEngine`` is their front. The rules are in docs/architecture.md.
"""
