"""Data: built-in sources, the prepare stage and in-memory batching."""
