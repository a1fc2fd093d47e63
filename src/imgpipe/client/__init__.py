"""The command-line client: upload, status, get and ls against a running imgpipe API."""
