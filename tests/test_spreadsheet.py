"""The CSV cell rule: formulas written as text, and read back as they were."""

from hypothesis import given
from hypothesis import strategies as st

from telline.spreadsheet import as_written, safe_cell


def test_formula_cells_are_quoted_and_others_left():
    assert [safe_cell(v) for v in ("=1+1", "+44 7400", "-2", "@SUM(A1)", "\tx", "\rx", "Jo", "", None, 3)] == [
        "'=1+1", "'+44 7400", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "Jo", "", "", "3"]


@given(st.text() | st.text(alphabet="'=+-@\t\rx ", max_size=6))
def test_reading_a_cell_back_gives_what_was_written(value):
    assert as_written(safe_cell(value)) == value


def test_a_value_that_starts_with_a_quoted_formula_is_quoted_again():
    assert safe_cell("'=x") == "''=x" and as_written("''=x") == "'=x"
    assert safe_cell("'x") == "'x" and as_written("'x") == "'x"
