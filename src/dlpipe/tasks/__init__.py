"""LightningModules: one per task, each wrapping a plain nn.Module from dlpipe.models."""
