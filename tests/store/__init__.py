"""The store (kabar.store) and the subscribers kept in it (kabar.subscribers)."""
