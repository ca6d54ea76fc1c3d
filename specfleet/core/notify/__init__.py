"""Notifications to product owners: the weekly digest and immediate needs-human notices.

``digest.py`` decides what goes in an owner's digest (pure), ``gather.py`` reads the facts
from the registry (including automerges not yet announced), ``announced.py`` records which
owner was told about which automerge, ``render.py`` writes e-mail text and webhook JSON
(Slack, Mattermost, Teams), ``send.py`` delivers by SMTP and webhooks, once per owner, week
(or evaluation) and channel.
"""
