"""smpp domain."""
