"""evaluate(run record): test metrics, plots, generative scoring; the model logged and
registered."""
