"""Email addresses as subscribers and the suppression list both keep them."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["InvalidAddress", "normalise_address"]


class InvalidAddress(ValueError):
    """An address email-validator rejects (syntax only: no DNS lookups)."""


def normalise_address(text: str) -> str:
    """The address as email-validator normalises it; raise InvalidAddress with its reason."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
