"""Database statements the ORM cannot say in one go."""

from django.db import connection
from django.db.models import Model


def insert_once(instance: Model, unique: str) -> bool:
    """Insert ``instance`` unless a row with the same ``unique`` value exists, in one statement
    (``INSERT ... ON CONFLICT DO NOTHING``, PostgreSQL and SQLite alike); True, with ``instance.pk`` set, if this
    call inserted it.

    Two transactions inserting the same value at once: the second waits for the first, then inserts nothing. No
    savepoint is needed around it, as one would be to catch an ``IntegrityError`` from a plain insert.
    """
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not (field.primary_key or field.generated)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only the model's own table and column names are put in the text; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({quote(meta.get_field(unique).column)}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def execute_with_binary_parameters(sql: str, params: list) -> int:
    """Run ``sql`` on PostgreSQL with its parameters sent apart from the statement, in binary; returns the number
    of rows it changed. Write placeholders as ``%s``.

    For statements carrying large arrays (an id and a value for each of 20,000 organisations): Django's cursor
    spells every value out as text inside the statement, which both sides then have to write and parse. This runs
    on Django's own connection, so inside its transaction; Django's query log does not see it.
    """
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql.replace("%s", "%b"), params)
        return cursor.rowcount
