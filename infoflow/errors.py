"""Exceptions that mean bad input (reported as one line, exit 1) rather than a bug."""

from infoflow.checks import ConfigError
from infoflow.data.mnist import MnistDataError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, MnistDataError)
