"""Settings: composing the config tree with Hydra, its schema and checks, secrets kept out
of records, a user's code found for shipping."""
