"""Rendering: turn selected articles into feeds, email digests and archive pages.

Renderers are pure: the same input always gives the same bytes."""
