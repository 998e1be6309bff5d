"""Every bench/ script runs in its --quick mode."""
