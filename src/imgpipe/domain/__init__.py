"""The domain: jobs, their states and errors, and the ports the rest plugs into. No I/O."""
