"""The converter's one error type: a readable reason naming the file."""


class ConversionError(Exception):
    """A slide could not be converted; ``str()`` says which file and why."""
