"""imgpipe: an event-driven image upload and thumbnail pipeline."""

__version__ = "0.1.0"
