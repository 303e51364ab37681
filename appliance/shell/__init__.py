"""shell domain."""
