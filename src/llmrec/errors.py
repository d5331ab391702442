"""One exception type for bad input, so the CLI can print one line and exit 2."""


class LlmrecError(Exception):
    """A problem with the user's input (file, row, field, id): printed as one line, exit code 2."""
