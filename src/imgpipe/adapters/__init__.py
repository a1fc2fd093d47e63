"""Concrete adapters for the domain ports; only ``imgpipe.bootstrap`` imports them."""
