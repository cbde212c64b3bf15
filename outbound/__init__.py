"""Mail out: render templates, queue them in the outbox, deliver to the smarthost."""
