"""Errors that the CLI turns into one line on stderr and exit status 2."""


class UserError(Exception):
    """A problem with the user's input (file, model, argument), phrased as one line."""


class ModelError(UserError):
    """A model file that is missing, corrupt or does not match its labels."""
