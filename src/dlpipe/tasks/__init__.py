"""What a training learns: one descriptor per task (kinds: its objective, monitors, test
metrics and plots, champion metric, whether it serves or trains under Ray), the task a
config names (configured: dlpipe's own or a user's), and the LightningModules that fit
them: `Task` fits one loss (objectives per task); `AdversarialTask` trains a GAN's two
networks against each other."""
