"""Deadline reminders and the channels that carry them (docs/reminders.md).

- :mod:`node.reminders.schedule` — pure: settings, which reminders are new,
  late or superseded, who receives them, their words, retry delays.
- :mod:`node.reminders.channels` — the :class:`~node.reminders.channels.Notifier`
  interface and its SMS gateway, SMTP and webhook implementations.
- :mod:`node.reminders.scheduler` — the durable dispatcher and sender
  (``Reminders.run_once(now)``), run by the node app on a tick.
- :mod:`node.http.api.reminders` — the message log and status endpoints, and the
  app wiring.
"""
