"""model domain."""
