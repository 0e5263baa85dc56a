"""ganmix search."""
