"""`python -m ticketd.cli`: the `ticketd` command."""

from ticketd.cli import main

main()
