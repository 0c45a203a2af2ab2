"""What people type, made safe to store and search: control characters removed (PostgreSQL refuses a NUL in
any query or row, and no name, search or note needs one)."""


def printable(text: str) -> str:
    """``text`` without control characters (line breaks and other white space are kept), trimmed."""
    return "".join(char for char in text if char.isprintable() or char.isspace()).strip()
