"""Reading input (kabar.sources) and ingesting it into the store (kabar.ingest)."""
