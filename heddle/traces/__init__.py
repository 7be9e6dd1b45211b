"""heddle.traces."""
