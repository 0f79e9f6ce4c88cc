"""Apps: create, list, show, destroy."""
