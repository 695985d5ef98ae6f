"""The errors medrag raises; each carries a stable machine-readable code."""


class MedragError(Exception):
    """Base class; `code` is stable, the message is for people."""

    code = "medrag_error"


class IndexMissingError(MedragError):
    code = "index_missing"


class IndexMismatchError(MedragError):
    """The index was built with another embedding model or is inconsistent."""

    code = "index_mismatch"


class IndexCorruptError(IndexMismatchError):
    """A version's files are damaged: missing, truncated or changed since it was written."""

    code = "index_corrupt"


class IndexBusyError(MedragError):
    """A transient race: the live version kept changing while it was read; asking again succeeds."""

    code = "index_busy"


class NotFoundError(MedragError):
    """A document, job or other resource named in a request does not exist."""

    code = "not_found"


class StorageError(MedragError):
    """Writing to the service's own disk failed (a full disk, a read-only folder, no permission)."""

    code = "storage_failed"


class StoreUnavailableError(MedragError):
    """The index's store (a Milvus server) cannot be reached or refused a request."""

    code = "store_unavailable"


class BadInputError(MedragError):
    code = "bad_input"


class TooLargeError(BadInputError):
    """An upload or a fetched page is over its size limit, or carries too many files."""

    code = "too_large"


class UnsupportedTypeError(BadInputError):
    """A file type that cannot be indexed, or content that does not match its declared type."""

    code = "unsupported_type"


class ParseTimeoutError(BadInputError):
    """A document took longer to parse than its wall-time limit (a PDF or HTML built to be slow)."""

    code = "parse_timeout"


class CancelledError(MedragError):
    """A job was cancelled (DELETE /jobs/{id}) before it wrote anything."""

    code = "cancelled"


class ConflictError(MedragError):
    """The request conflicts with the resource's state (cancelling a job that has finished)."""

    code = "conflict"


class FetchRefusedError(MedragError):
    """The URL was not fetched: its scheme or address is not allowed (the SSRF guard)."""

    code = "fetch_refused"


class UnknownModelError(NotFoundError):
    """A request names a model this service does not serve (the OpenAI-compatible endpoint)."""

    code = "model_not_found"


class FetchFailedError(MedragError):
    """The URL was allowed but fetching it failed: unreachable, an HTTP error, too slow or too large."""

    code = "fetch_failed"


class WritesDisabledError(MedragError):
    code = "writes_disabled"


class UnauthorizedError(MedragError):
    code = "unauthorized"


class GeneratorError(MedragError):
    code = "generator_failed"


class ConfigError(MedragError):
    """A setting names something that cannot be used (a model that does not load, say)."""

    code = "config_error"
