"""The config's schema: every group's settings (groups, data), how they are declared and
checked (check, targets), and `validate.validate(cfg)`, which checks a composed config."""
