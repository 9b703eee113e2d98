"""nodeconfig (see the node-side issue)."""
