"""store/generations domain."""
