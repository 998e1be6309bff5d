"""The HTTP API, outgoing webhooks, metrics, health checks, config reload and kabar jobs."""
