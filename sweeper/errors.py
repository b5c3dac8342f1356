"""The one error a user sees from our sweepers: one line, no traceback."""

from hydra.errors import CompactHydraException


class SweeperError(CompactHydraException):
    """A mistake in the sweeper's input, or a sweep that cannot go on. Hydra prints the message
    alone (CompactHydraException) and exits with status 1. The message names the setting."""
