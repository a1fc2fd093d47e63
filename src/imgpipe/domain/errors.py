"""Errors classified by what the caller should do with them. No I/O lives here.

Every error carries a stable machine ``code`` (part of the HTTP contract) and a
human sentence. A ``PermanentError`` ends a job ``FAILED`` at once: retrying
cannot help. A ``RetryableError`` means a dependency was briefly away: retry with
backoff, and only give up after a bounded number of tries.
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailable",
    "CorruptImage",
    "DatabaseUnavailable",
    "EmptyUpload",
    "ImageTooLarge",
    "ImgpipeError",
    "JobNotFound",
    "ObjectNotFound",
    "PermanentError",
    "ProcessingCrashed",
    "ProcessingTimeout",
    "RetryableError",
    "StoreUnavailable",
    "UnsupportedImage",
    "UploadTooLarge",
]


class ImgpipeError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``message`` is for people."""

    code = "internal_error"
    default_message = "Something went wrong inside imgpipe."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class PermanentError(ImgpipeError):
    """Retrying will not help: the job ends FAILED with this code."""


class RetryableError(ImgpipeError):
    """A dependency is briefly away: retry with backoff, then give up."""


# --- what the image itself can be blamed for -------------------------------------


class UnsupportedImage(PermanentError):
    code = "unsupported_format"
    default_message = "The file is not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC or AVIF)."


class CorruptImage(PermanentError):
    code = "corrupt_image"
    default_message = "The image data is corrupt or truncated and cannot be decoded."


class ImageTooLarge(PermanentError):
    code = "image_too_large"
    default_message = "The image has more pixels than this server accepts."


class EmptyUpload(PermanentError):
    code = "empty_upload"
    default_message = "The upload is empty: send a non-empty image in the multipart field 'file'."


class UploadTooLarge(PermanentError):
    code = "upload_too_large"
    default_message = "The upload is larger than this server accepts."


# --- what the processing can end with ---------------------------------------------


class ProcessingTimeout(PermanentError):
    code = "processing_timeout"
    default_message = "Making the variants took longer than the hard time limit."


class ProcessingCrashed(RetryableError):
    """The kernel process died under the job (or its worker did): retried up to the
    attempt limit, after which the job ends FAILED with this code."""

    code = "processing_crashed"
    default_message = "Processing this image stopped the worker every time it was tried; giving up."


# --- lookups -------------------------------------------------------------------------


class JobNotFound(PermanentError):
    code = "job_not_found"
    default_message = "No job has this id."


class ObjectNotFound(PermanentError):
    """The store has no object under this key, whatever the backend."""

    code = "object_not_found"
    default_message = "The stored object does not exist."


# --- dependencies briefly away ------------------------------------------------------


class StoreUnavailable(RetryableError):
    code = "storage_unavailable"
    default_message = "The object storage did not answer."


class DatabaseUnavailable(RetryableError):
    code = "database_unavailable"
    default_message = "The database did not answer."


class BrokerUnavailable(RetryableError):
    code = "broker_unavailable"
    default_message = "The message broker did not answer."
