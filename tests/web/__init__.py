"""The HTTP app: feeds served, subscribe and unsubscribe, headers, limits (kabar.web)."""
