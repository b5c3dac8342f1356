class ConfigError(ValueError):
    """A model config that cannot build a model. The message names the key: `model.P: ...`."""
