"""Rendering: turn selected articles into feeds, email digests and archive pages."""
