"""The scheduler and manual issues beside scheduled ones (kabar.schedule)."""
