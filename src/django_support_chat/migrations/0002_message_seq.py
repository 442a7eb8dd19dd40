"""Per-conversation message sequence numbers (``Message.seq``, ``Conversation.last_seq``).

Existing messages are numbered 1, 2, 3, ... per conversation in id order (the order they
were stored: sends to one conversation were already serialised by its row lock).
"""

from django.db import migrations, models

BATCH = 1000


def number_messages(apps, schema_editor):
    Conversation = apps.get_model("support_chat", "Conversation")
    Message = apps.get_model("support_chat", "Message")
    db = schema_editor.connection.alias
    conversations = (
        Message.objects.using(db).order_by().values_list("conversation_id", flat=True).distinct()
    )
    for conversation_id in conversations.iterator():
        rows = Message.objects.using(db).filter(conversation_id=conversation_id).order_by("id")
        pending = []
        seq = 0
        for message in rows.only("id").iterator(chunk_size=BATCH):
            seq += 1
            message.seq = seq
            pending.append(message)
            if len(pending) >= BATCH:
                Message.objects.using(db).bulk_update(pending, ["seq"])
                pending = []
        if pending:
            Message.objects.using(db).bulk_update(pending, ["seq"])
        Conversation.objects.using(db).filter(pk=conversation_id).update(last_seq=seq)


class Migration(migrations.Migration):
    dependencies = [
        ("support_chat", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="last_seq",
            field=models.PositiveIntegerField(default=0, verbose_name="last sequence number"),
        ),
        migrations.AddField(
            model_name="message",
            name="seq",
            field=models.PositiveIntegerField(null=True, verbose_name="sequence number"),
        ),
        migrations.RunPython(number_messages, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="message",
            name="seq",
            field=models.PositiveIntegerField(verbose_name="sequence number"),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("conversation", "seq"), name="sc_msg_conv_seq_unique"
            ),
        ),
    ]
