"""Render: turn selected articles into output bytes (feeds here; email and archive pages
elsewhere). Renderers are pure: the same input always gives the same bytes."""
