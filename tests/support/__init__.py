"""Helpers the test wings share: the test project, databases, golden files, delivery and
digest setups, feed checks and the private mail servers. Fixtures live in tests/conftest.py."""
