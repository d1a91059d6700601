"""Errors of the report stage."""

from febm.errors import FebmError


class ReportInputError(FebmError):
    """An input file of the report that is missing or malformed."""
