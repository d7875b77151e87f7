"""Trained models put to use on raw inputs: by `dlpipe predict`, and as the MLflow pyfunc
model that the evaluate stage logs and registers.

A model serves with its settings (dlpipe.serving.settings): how to rebuild it, the
training's standardisation statistics and what its raw inputs are. Generative models and
autoencoders are not served: their outputs are no predictions (a task's `servable`, see
dlpipe.tasks.kinds).
"""
