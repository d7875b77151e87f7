"""LightningModules wrapping a plain nn.Module from dlpipe.models: `Task` fits one loss
(an objective per task: classification, regression, reconstruction); `AdversarialTask`
trains a GAN's two networks against each other."""
