"""heddle."""
