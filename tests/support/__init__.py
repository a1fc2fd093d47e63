"""Test support: the real servers the suite talks to, and small helpers shared by the suites."""
