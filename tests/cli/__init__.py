"""The command line and the config it reads (kabar.cli, kabar.config)."""
