"""The private mail servers the bounce tests stand on."""
