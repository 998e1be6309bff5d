"""Deliver: put rendered output where readers get it (feed storage, hub pings; SMTP and
the delivery ledger live here too)."""
