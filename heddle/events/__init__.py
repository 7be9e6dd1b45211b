"""heddle.events."""
