"""`#away until <date>` is read whatever the case of `until`, as the command's name is."""

from __future__ import annotations

from datetime import datetime

import pytest

from ticketd.domain.absence import DeskRequest, read_desk_mail

NOW = datetime(2026, 11, 23, 9, 0)


@pytest.mark.parametrize("text", ["#away until 2026-12-01\n", "#away Until 2026-12-01\n",
                                  "#Away UNTIL 2026-12-01\n", "#away until  2026-12-01\n"])
def test_away_until_a_date_in_any_case(text):
    assert read_desk_mail(text, NOW) == DeskRequest("away", datetime(2026, 12, 1))
