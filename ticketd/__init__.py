"""ticketd: an email-ingesting help-desk daemon."""

__version__ = "0.1.0"
