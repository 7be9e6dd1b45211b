"""heddle.live."""
