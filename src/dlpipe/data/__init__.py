"""Data: built-in sources and user files, the prepare stage and in-memory batching."""
