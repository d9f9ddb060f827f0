"""Django's flush, able to empty a SQLite database whose guarded tables refuse DELETE.

The audit log and the registered versions refuse DELETE by trigger (migration 0009). PostgreSQL's
flush truncates, which fires no row trigger; SQLite's deletes row by row. So on SQLite the
`*_no_delete` triggers are dropped and created again around the flush, in one transaction: a
failed flush leaves them in place, and nothing else can delete while they are away.
"""

from django.core.management.commands import flush
from django.db import connections, transaction


class Command(flush.Command):
    def handle(self, **options):
        connection = connections[options["database"]]
        if connection.vendor != "sqlite":
            return super().handle(**options)
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%\\_no\\_delete' ESCAPE '\\'")
                guards = cursor.fetchall()
                for name, _ in guards:
                    cursor.execute(f'DROP TRIGGER "{name}"')
            super().handle(**options)
            with connection.cursor() as cursor:
                for _, sql in guards:
                    cursor.execute(sql)
