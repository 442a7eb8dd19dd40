"""The send path's statements, with their SQL compiled once per database (#14).

Django compiles a query's SQL again on every call. For the statements every send runs
(the conversation's row lock, the INSERTs of the message, its audit row and notification,
the conversation's UPDATE) that costs two to three times the round trip itself: on
PostgreSQL about 300, 340 and 200 microseconds of worker CPU for the lock, an INSERT and
the UPDATE, against 70, 110 and 80 with the same SQL kept. Here Django's own compilers
write each statement's SQL the first time, for the database and the columns at hand;
later calls bind the new values with the fields' own ``pre_save`` and
``get_db_prep_save`` and read rows through the backend's converters, so what is stored and
read is what the ORM stores and reads.

The ORM runs instead where that is not known to hold: a database other than PostgreSQL or
SQLite (the INSERT needs ``RETURNING``), a model with ``pre_save``/``post_save`` receivers
(``save()`` would call them; these INSERTs do not), values that are expressions, or SQL
whose parameters do not come out as the values given.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.signals import post_save, pre_save
from django.db.models.sql.subqueries import InsertQuery, UpdateQuery

VENDORS = frozenset({"postgresql", "sqlite"})

# (alias, vendor, what) -> compiled statement, or None: the ORM's path for that statement.
_compiled: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def _remember(key: tuple[Any, ...], build: Any) -> Any:
    try:
        return _compiled[key]
    except KeyError:
        pass
    value = build()
    with _lock:
        return _compiled.setdefault(key, value)


# Per thread and database alias, the cursor these statements run on. A new psycopg cursor
# looks up its adapters again for its first statement: about 25 microseconds, five times
# a send. One per thread, not per connection object: under ASGI a request may bring a new
# DatabaseWrapper, and a cache keyed by them would keep every one alive.
_kept = threading.local()


def _cursor(connection: Any) -> Any:
    """The kept cursor of ``connection``, or a new one (kept instead) when the thread's
    connection or its driver connection changed (closed, reconnected, another one from
    the pool). Only called in an atomic block: the connection is open and was checked."""
    kept = getattr(_kept, "cursors", None)
    if kept is None:
        kept = _kept.cursors = {}
    entry = kept.get(connection.alias)
    if entry is not None and entry[0] is connection.connection and entry[1].db is connection:
        return entry[1]
    cursor = connection.cursor()
    kept[connection.alias] = (connection.connection, cursor)
    return cursor


def _execute(connection: Any, sql: str, params: list[Any], read: Any) -> Any:
    """Run ``sql`` and return ``read(cursor)``. A debug cursor (``DEBUG``, Django's
    ``assertNumQueries``) logs the statement: then Django's own, new each time, as the ORM
    does. Execute wrappers run either way (the cursor wrapper calls them)."""
    if connection.queries_logged or not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    cursor = _cursor(connection)
    cursor.execute(sql, params)
    return read(cursor)


_fetchone = operator.methodcaller("fetchone")
_rowcount = operator.attrgetter("rowcount")


def clear() -> None:
    """Forget every compiled statement (tests that change a model's table or fields)."""
    with _lock:
        _compiled.clear()
    _kept.__dict__.clear()  # this thread's cursors


class _Select:
    """A compiled SELECT: its SQL; per model it builds (the queryset's own, then each
    ``select_related`` one, by the attribute it goes to), where its columns are; and the
    positions of the columns the backend converts."""

    __slots__ = ("converted", "parts", "sql")

    def __init__(
        self, sql: str, parts: list[tuple[str | None, Any, list[str], slice]], converted: list
    ) -> None:
        self.sql, self.parts, self.converted = sql, parts, converted


def get(queryset: QuerySet, pk: Any, what: str) -> Model:
    """``queryset.get(pk=pk)``, for a ``queryset`` of its model's own columns and at most
    one level of ``select_related`` (as the row lock is: ``select_for_update()``, with the
    customer on the staff side); ``what`` names it: the same name always comes with the
    same queryset. Raises the model's ``DoesNotExist``."""
    model, alias = queryset.model, queryset.db
    connection = connections[alias]
    key = (alias, connection.vendor, "get", model, what)
    select = _remember(key, lambda: _compile_select(queryset, pk, alias))
    if select is None:
        return queryset.get(pk=pk)
    row = _execute(
        connection, select.sql, [model._meta.pk.get_db_prep_value(pk, connection)], _fetchone
    )
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    if select.converted:
        row = list(row)
        for position, expression in select.converted:
            for convert in _converters(expression, connection):
                row[position] = convert(row[position], expression, connection)
    (_, _, attnames, columns), *related = select.parts
    obj = model.from_db(alias, attnames, row[columns])
    for name, related_model, attnames, columns in related:
        values = row[columns]
        # A LEFT JOIN that found nothing (a nullable foreign key): no related row.
        setattr(
            obj, name, None if values[0] is None else related_model.from_db(alias, attnames, values)
        )
    return obj


def _compile_select(queryset: QuerySet, pk: Any, alias: str) -> _Select | None:
    connection = connections[alias]
    if connection.vendor not in VENDORS:
        return None
    model = queryset.model
    related = queryset.query.select_related
    if related is True or any(nested for nested in (related or {}).values()):
        return None  # every relation, or a nested one: the ORM's
    wanted: list[tuple[str | None, Any]] = [(None, model)]
    for name in related or {}:
        field = model._meta.get_field(name)
        if not field.many_to_one:
            return None
        wanted.append((name, field.related_model))
    compiler = queryset.filter(pk=pk).order_by().query.get_compiler(alias)
    sql, params = compiler.as_sql()
    columns = [expression for expression, _sql, _alias in compiler.select]
    parts, start = [], 0
    for name, part_model in wanted:
        fields = part_model._meta.concrete_fields
        # The primary key first: a related row of NULLs reads as "none".
        if fields[0] is not part_model._meta.pk:
            return None
        span = columns[start : start + len(fields)]
        if len(span) != len(fields) or any(
            getattr(column, "target", None) is not field
            for column, field in zip(span, fields, strict=True)
        ):
            return None
        parts.append(
            (name, part_model, [f.attname for f in fields], slice(start, start + len(fields)))
        )
        start += len(fields)
    if start != len(columns) or list(params) != [model._meta.pk.get_db_prep_value(pk, connection)]:
        return None
    converted = [
        (position, column)
        for position, column in enumerate(columns)
        if _converters(column, connection)
    ]
    return _Select(sql, parts, converted)


def _converters(expression: Any, connection: Any) -> list[Any]:
    """What the compiler applies to a column read: the backend's converters, then the
    field's (``from_db_value``). Looked up per read, on the connection of the thread."""
    return connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)


def insert(obj: Model) -> None:
    """``obj.save(force_insert=True)`` for a new row whose primary key the database sets:
    one INSERT ... RETURNING, ``obj.pk`` set from it."""
    model = type(obj)
    alias = router.db_for_write(model, instance=obj)
    connection = connections[alias]
    compiled = None
    if not (pre_save.has_listeners(model) or post_save.has_listeners(model)):
        key = (alias, connection.vendor, "insert", model)
        compiled = _remember(key, lambda: _compile_insert(obj, alias))
    if compiled is None:
        obj.save(force_insert=True, using=alias)
        return
    sql, fields = compiled
    obj.pk = _execute(connection, sql, _insert_params(obj, fields, connection), _fetchone)[0]
    obj._state.adding = False
    obj._state.db = alias


def _compile_insert(obj: Model, alias: str) -> tuple[str, list[Any]] | None:
    model, connection = type(obj), connections[alias]
    meta = model._meta
    if (
        connection.vendor not in VENDORS
        or not connection.features.can_return_columns_from_insert
        or meta.parents
        or meta.auto_field is None
        or list(meta.db_returning_fields) != [meta.pk]
        or obj.pk is not None
    ):
        return None
    fields = [
        field
        for field in meta.local_concrete_fields
        if field is not meta.auto_field and not getattr(field, "generated", False)
    ]
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    compiler = query.get_compiler(alias)
    compiler.returning_fields = [meta.pk]
    statements = compiler.as_sql()
    if len(statements) != 1:
        return None
    sql, params = statements[0]
    if not _same(params, _insert_params(obj, fields, connection)):
        return None
    return sql, fields


def _insert_params(obj: Model, fields: list[Any], connection: Any) -> list[Any]:
    return [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]


def _same(theirs: Any, mine: list[Any]) -> bool:
    """Whether the compiler's parameters are the values this module binds. A JSON value is
    bound wrapped (psycopg's ``Jsonb``), and two wrappers of one value are not equal: their
    ``obj`` is compared."""
    theirs = list(theirs)
    return len(theirs) == len(mine) and all(
        a == b or (type(a) is type(b) and hasattr(a, "obj") and a.obj == b.obj)
        for a, b in zip(theirs, mine, strict=True)
    )


def update(model: type[Model], pk: Any, changes: dict[str, Any]) -> int:
    """``model.objects.filter(pk=pk).update(**changes)`` for plain values (model instances
    for foreign keys allowed); the number of rows changed."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    compiled = None
    if not any(hasattr(value, "resolve_expression") for value in changes.values()):
        key = (alias, connection.vendor, "update", model, tuple(changes))
        compiled = _remember(key, lambda: _compile_update(model, pk, changes, alias))
    if compiled is None:
        return model._base_manager.using(alias).filter(pk=pk).update(**changes)
    sql, fields = compiled
    return _execute(  # type: ignore[no-any-return]
        connection, sql, _update_params(model, pk, changes, fields, connection), _rowcount
    )


def _update_params(
    model: type[Model], pk: Any, changes: dict[str, Any], fields: list[Any], connection: Any
) -> list[Any]:
    """The SET values, prepared as the update compiler prepares them (a model instance
    for a foreign key becomes its key), then the primary key of the WHERE."""
    params = []
    for name, field in fields:
        value = changes[name]
        if hasattr(value, "prepare_database_save"):
            value = value.prepare_database_save(field)
        params.append(field.get_db_prep_save(value, connection=connection))
    params.append(model._meta.pk.get_db_prep_value(pk, connection))
    return params


def _compile_update(
    model: type[Model], pk: Any, changes: dict[str, Any], alias: str
) -> tuple[str, list[tuple[str, Any]]] | None:
    connection = connections[alias]
    if connection.vendor not in VENDORS:
        return None
    query = model._base_manager.using(alias).filter(pk=pk).query.chain(UpdateQuery)
    query.add_update_values(changes)
    if query.related_updates or len(query.values) != len(changes):
        return None
    sql, params = query.get_compiler(alias).as_sql()
    fields = [
        (name, field) for name, (field, _model, _value) in zip(changes, query.values, strict=True)
    ]
    if any(name not in (field.name, field.attname) for name, field in fields):
        return None
    if not sql or not _same(params, _update_params(model, pk, changes, fields, connection)):
        return None
    return sql, fields
