"""Independent peers the end-to-end tests and benches drive the node with."""
