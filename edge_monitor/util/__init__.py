"""Small helpers with no edge_monitor imports: backoff, JSON conversion."""
