"""The errors fsw raises for bad input; each message names the file or setting at fault."""


class FswError(Exception):
    """Base class: a user-facing error with a message that says what is wrong and where."""


class DataError(FswError):
    """The dataset is missing, incomplete or corrupt."""


class ModelFileError(FswError):
    """A model file is missing, unsafe, corrupt or does not describe a known network."""


class KeyFileError(FswError):
    """A key file is missing, unsafe, corrupt, tampered with, or does not fit the model."""


class KeygenError(FswError):
    """FGSM did not find enough true or false adversaries to build the requested key."""


class OutputError(FswError):
    """An output could not be written (e.g. no space left on the device); nothing of it was written."""


class ConfigError(FswError):
    """A configuration value is out of range or of the wrong type."""
