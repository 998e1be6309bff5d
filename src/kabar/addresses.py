"""Email addresses as subscribers and the suppression list both keep them."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["InvalidAddress", "normalise_address"]


class InvalidAddress(ValueError):
    """An address email-validator rejects (syntax only: no DNS lookups)."""


MAX_LOCAL_PART = 64


def normalise_address(text: str) -> str:
    """The address as email-validator normalises it, its domain in ASCII (punycode) since
    kabar's mail does not use SMTPUTF8; raise InvalidAddress with its reason. RFC 5321
    caps the part before the @ at 64 characters."""
    try:
        valid = validate_email(text.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    address = valid.ascii_email or valid.normalized  # always ASCII without SMTPUTF8
    if len(address.rpartition("@")[0]) > MAX_LOCAL_PART:
        raise InvalidAddress(f"the part before the @-sign is over {MAX_LOCAL_PART} characters")
    return address
