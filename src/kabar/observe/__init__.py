"""What an operator watches from outside: Prometheus metrics and health checks."""
