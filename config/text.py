"""What people type, made safe to store and search: control characters removed (PostgreSQL refuses a NUL in
any query or row, and no name, search or note needs one)."""


def printable(text: str) -> str:
    """``text`` without control characters (line breaks and other white space are kept), trimmed."""
    return "".join(char for char in text if char.isprintable() or char.isspace()).strip()


# A spreadsheet runs a cell starting with one of these as a formula (a tab or a carriage return can hide one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Characters a workbook refuses and no one can see; left in, one could also hide a formula's first character.
_UNSAVEABLE = str.maketrans(dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]))


def spreadsheet_cell(value):
    """``value`` as an exported cell: text without the control characters a workbook refuses, and, when it would
    start a formula, with an apostrophe before it so that a spreadsheet shows it as text. Other values as they are.

    The characters go first, so that a formula behind one (``"\\x01=HYPERLINK(...)"``) is caught too."""
    if not isinstance(value, str):
        return value
    value = value.translate(_UNSAVEABLE)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
