"""heddle.advisor."""
