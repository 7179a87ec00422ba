"""From window scores to events: the k-of-n decision, the explanation of an alert, evidence WAVs."""
