"""train(cfg): data, model, task and Trainer built from the config; checkpoints, resume,
transfer, the MLflow epoch logger."""
