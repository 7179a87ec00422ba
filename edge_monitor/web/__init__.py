"""The operator's view: HTTP server, status board, Prometheus metrics, the status page."""
