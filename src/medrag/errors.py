"""The errors medrag raises; each carries a stable machine-readable code."""


class MedragError(Exception):
    """Base class; `code` is stable, the message is for people."""

    code = "medrag_error"


class IndexMissingError(MedragError):
    code = "index_missing"


class IndexMismatchError(MedragError):
    """The index was built with another embedding model or is inconsistent."""

    code = "index_mismatch"


class BadInputError(MedragError):
    code = "bad_input"


class FetchRefusedError(MedragError):
    code = "fetch_refused"


class UnknownModelError(MedragError):
    """A request names a model this service does not serve (the OpenAI-compatible endpoint)."""

    code = "model_not_found"


class GeneratorError(MedragError):
    code = "generator_failed"


class ConfigError(MedragError):
    """A setting names something that cannot be used (a model that does not load, say)."""

    code = "config_error"
