"""Errors that the CLI turns into one line on stderr and exit status 2."""

import errno

DISK_ERRORS = {  # OSError numbers that mean "the storage cannot take writes", in plain words
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
}


class UserError(Exception):
    """A problem with the user's input (file, model, argument), phrased as one line."""


class ModelError(UserError):
    """A model file that is missing, corrupt or does not match its labels."""
