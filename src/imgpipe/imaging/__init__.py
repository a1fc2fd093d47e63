"""The image kernel: sniff and probe headers, make variants. Pure bytes in, bytes out; no I/O, no event loop."""
