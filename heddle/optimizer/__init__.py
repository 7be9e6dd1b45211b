"""heddle.optimizer."""
