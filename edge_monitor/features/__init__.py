"""The one log-mel front end, shared bit for bit by training and run time."""
