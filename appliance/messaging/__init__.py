"""messaging domain."""
