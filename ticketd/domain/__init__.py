"""The pure heart: statuses, lifecycle decisions, tags, signatures, loop signals."""
