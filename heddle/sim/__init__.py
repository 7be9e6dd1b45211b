"""heddle.sim."""
