"""ganmix tracking."""
