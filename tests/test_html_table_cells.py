"""Cells of a table stay apart in the text, also when the mail leaves their end tags out."""

from __future__ import annotations

import pytest

from ingest.html_text import html_to_text


@pytest.mark.parametrize("markup, text", [
    # HTML lets a writer leave out </td> and </th> (HTML, optional tags): the next cell ends the cell.
    ("<table><tr><td>Order<td>4711<tr><td>Total<td>9.99</table>", "Order 4711\nTotal 9.99"),
    ("<table><tr><th>Item<th>Price<tr><td>Widget</td><td>9.99</td></table>", "Item Price\nWidget 9.99"),
    ("<table><tr><td><b>Name</b><td><i>Ann</i></table>", "Name Ann"),
    # Cells closed as usual, and an empty first cell, read as before.
    ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
    ("<table><tr><td></td><td>b</td></tr></table>", "b"),
])
def test_adjacent_cells_do_not_run_together(markup: str, text: str) -> None:
    assert html_to_text(markup) == text
