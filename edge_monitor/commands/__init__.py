"""One module per ``edge-monitor`` subcommand (see :mod:`edge_monitor.cli`)."""
