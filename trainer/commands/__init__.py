"""One module per ``edge-monitor-train`` subcommand (see :mod:`trainer.cli`)."""
