"""Issues: which articles go in, preparing, personalising and previewing (kabar.digest)."""
