"""Related news, "Berita terkait" (kabar.related)."""
