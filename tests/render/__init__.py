"""Renderers: feed documents, email issues, locale formatting (kabar.render)."""
