"""sip domain."""
