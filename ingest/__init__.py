"""Mail in: the SMTP receiver, the IMAP poller, parsing and threading."""

from ingest import email_params

# Before any mail is parsed in this process (ingest.email_params says why).
email_params.install()
