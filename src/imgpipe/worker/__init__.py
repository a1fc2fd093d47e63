"""The worker: consume job messages, run the kernel in child processes, settle each message after the commit."""
