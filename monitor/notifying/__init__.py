"""Notifications out: delivering alerts to channels (webhook, Slack, Telegram,
Discord, e-mail), with retries and a delivery log."""
