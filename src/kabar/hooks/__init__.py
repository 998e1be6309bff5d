"""Webhooks out: events recorded with the change they tell of (kabar.hooks.events), and
delivered to the endpoints the config names, signed per Standard Webhooks, through a
ledger with retries (kabar.hooks.deliver)."""
