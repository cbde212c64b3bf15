"""Mail in: the SMTP receiver, the IMAP poller, parsing and threading."""
