"""Notifications to product owners: the weekly digest and immediate needs-human notices.

``digest.py`` decides what goes in an owner's digest (pure), ``gather.py`` reads the facts
from the registry, ``render.py`` writes e-mail text and webhook JSON (Slack, Mattermost,
Teams), ``send.py`` delivers by SMTP and webhooks, once per owner, week (or evaluation) and
channel.
"""
