"""imgpipe's benchmark harness: ``python -m bench`` measures the kernel, the pipelines and a peer, writes the report."""

__all__: list[str] = []
