class DataError(ValueError):
    """Data that cannot be loaded: the message says which file and what to do."""
