"""Message HTML rendered once, when the message is stored (``Message.html``).

Existing messages are rendered here, in batches of ``BATCH`` rows walked by primary key, so
reads never have to run bleach for them. Reversing drops the column; the backfill has
nothing to undo.
"""

from django.db import migrations, models

BATCH = 1000


def render_existing(apps, schema_editor):
    # The app's renderer, not a copy: the stored HTML must be exactly what a send stores.
    from django_support_chat.text import render_text

    Message = apps.get_model("support_chat", "Message")
    db = schema_editor.connection.alias
    pending = Message.objects.using(db).filter(html="").order_by("pk").only("pk", "text")
    last = 0
    while True:
        # Keyset pages rather than one open cursor: the rows are updated while we walk.
        rows = list(pending.filter(pk__gt=last)[:BATCH])
        if not rows:
            break
        for message in rows:
            message.html = render_text(message.text)
        Message.objects.using(db).bulk_update(rows, ["html"], batch_size=BATCH)
        last = rows[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("support_chat", "0005_notification_emailed_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="html",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(render_existing, migrations.RunPython.noop, elidable=True),
    ]
