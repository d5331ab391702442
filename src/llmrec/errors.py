"""One exception type for bad input, so the CLI can print one line and exit 2."""


class LlmrecError(Exception):
    """A problem with the user's input (file, row, field, id): printed as one line, exit code 2."""


class UnknownIdError(LlmrecError):
    """A user or item the run does not know (`llmrec.ids`): the CLI prints it like any bad input, the HTTP
    server answers 404 with the same line."""
