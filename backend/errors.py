"""Domain errors that carry their HTTP status; `web.errors` renders them (HTML or JSON)."""

from __future__ import annotations


class SearchAppError(Exception):
    """Base class: a problem the user can fix, with the status to answer it with."""

    status = 400
    code = "bad_request"
    # What a visitor is told of a server-side error (5xx), whose message is for the operator.
    public_message: str | None = None

    def __init__(
        self, message: str, *, status: int | None = None, plain: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # The same in words for a form's visitor, where `message` names request parameters as
        # API clients spell them ("min_price=5 must not be above max_price=2").
        self.plain = plain or message
        if status is not None:
            self.status = status


class ConfigError(SearchAppError):
    """A setting is missing or invalid; raised once at startup."""

    status = 500
    code = "config_error"


class InvalidInput(SearchAppError):
    """A request parameter is missing or out of range."""

    code = "invalid_input"


class FetchError(SearchAppError):
    """An image URL could not be fetched (refused, unreachable, too large, not an image)."""

    code = "fetch_failed"


class ImageError(SearchAppError):
    """Bytes that are not an image we accept (format, size, corrupt)."""

    code = "bad_image"


class PayloadTooLarge(SearchAppError):
    status = 413
    code = "too_large"


class Busy(SearchAppError):
    """Shed load: the resource the request needs is in use; retry after `retry_after` seconds."""

    status = 429
    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(SearchAppError):
    status = 404
    code = "not_found"


class CatalogNotWritable(SearchAppError):
    """products.csv, index.csv or the uploads folder cannot be written (permissions, full disk)."""

    status = 500
    code = "catalog_not_writable"


class CatalogReadOnly(SearchAppError):
    """Live edits of a catalog the app only reads (CATALOG_PATH=s3://...)."""

    status = 409
    code = "catalog_read_only"


class Unauthorized(SearchAppError):
    """A protected operation without the right credentials."""

    status = 401
    code = "unauthorized"


class EndpointDisabled(SearchAppError):
    """A token-protected endpoint is off because its token is not configured: the admin API and
    the insights page without ADMIN_TOKEN, /metrics without METRICS_TOKEN.

    Its code stays `admin_disabled`, the one clients have always been given."""

    status = 403
    code = "admin_disabled"


class SearchLogUnreadable(SearchAppError):
    """The search log's file cannot be read (damaged, or not a SQLite file); searches go on.

    The visitor is the shop owner, behind the admin token: told what is wrong and what to do;
    the file's full path goes to the server log only."""

    status = 503
    code = "search_log_unreadable"

    def __init__(self, message: str, *, detail: str) -> None:
        super().__init__(f"{message} ({detail})")
        self.public_message = message
