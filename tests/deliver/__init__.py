"""Email delivery: the ledger, transports, sending, crash safety, distributed workers."""
