"""Ray: joining or starting a cluster, and training on it with Ray Train."""
