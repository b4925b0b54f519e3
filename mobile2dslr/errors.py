"""User-facing errors: the CLI prints their message as one line and exits with status 2."""


class UserError(Exception):
    """An error caused by the user's input (files, folders, configs), not by a bug.

    The message must name the file or folder and say what is wrong with it.
    """


class DatasetLayoutError(UserError):
    """A dataset folder is missing or does not follow the layout its DataModule reads."""


class ImageReadError(UserError):
    """An image file cannot be read (empty, truncated, not an image, unreadable)."""


class WeightsError(UserError):
    """A weights or checkpoint file is missing, corrupt or does not fit the network."""
