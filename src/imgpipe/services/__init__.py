"""Use cases as plain async functions that receive the ports they touch."""
