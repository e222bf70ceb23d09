"""Delivering notifications: each kind to a real local far end (an aiohttp server for
the HTTP kinds, aiosmtpd for e-mail), retries, the guard, the log, the metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from monitor.config import Config
from monitor.model.notification import Notification
from monitor.notifying.notifier import Notifier
from monitor.rules.channels import validate_new
from monitor.storage.channels import Channel, Delivery
from monitor.web.appkeys import CHANNELS, METRICS, OUTBOUND
from tests.helpers.smtp import SmtpServer
from tests.helpers.tracker import Tracker

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnn"
ALERT = Notification(
    endpoint_id=7,
    endpoint_name="Binom <main> & @everyone",
    condition="silence",
    state="firing",
    sentence="No postbacks for 2 h (expected every 30 min).",
    link="http://pbm.test/endpoints/7",
    occurred_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
)


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",), outbound_timeout_s=5.0)


def notifier(client: TestClient, **kwargs: Any) -> Notifier:
    """The app's store, outbound client and metrics; retries quick enough for a test."""
    options: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, **kwargs}
    app = client.app
    return Notifier(app[CHANNELS], app[OUTBOUND], app[METRICS], **options)


async def channel(client: TestClient, kind: str, config: dict[str, Any]) -> Channel:
    return await client.app[CHANNELS].create(
        validate_new({"name": f"{kind} ch", "kind": kind, "config": config})
    )


async def log_of(client: TestClient, ch: Channel) -> list[dict[str, Any]]:
    items, _ = await client.app[CHANNELS].deliveries(ch.id)
    return items


async def test_webhook_is_signed_as_standard_webhooks_says(
    client: TestClient, tracker: Tracker
) -> None:
    ch = await channel(client, "webhook", {"url": tracker.url("/hook")})
    (outcome,) = await notifier(client).send([ch.id], ALERT)
    assert outcome.ok and outcome.status == 200 and outcome.attempts == 1
    (got,) = tracker.requests
    assert got.header("content-type") == "application/json"
    assert got.header(
        "webhook-id",
    ).startswith("msg_")  # type: ignore[union-attr]
    payload = Webhook(ch.config["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "postback_monitor.alert"
    assert payload["data"] == {
        "endpoint_id": 7,
        "endpoint_name": ALERT.endpoint_name,
        "condition": "silence",
        "state": "firing",
        "message": ALERT.sentence,
        "link": ALERT.link,
        "occurred_at": "2026-11-27T12:00:00+00:00",
    }
    (logged,) = await log_of(client, ch)
    assert logged["ok"] and logged["status"] == 200 and logged["attempt"] == 1
    assert logged["message_id"] == got.header("webhook-id")
    assert logged["summary"] == "FIRING: silence on Binom <main> & @everyone"


async def test_slack_discord_and_telegram_get_their_bodies(
    client: TestClient, tracker: Tracker
) -> None:
    slack = await channel(client, "slack", {"webhook_url": tracker.url("/slack/T/B/x")})
    discord = await channel(client, "discord", {"webhook_url": tracker.url("/discord/1/y")})
    telegram = await channel(
        client, "telegram", {"bot_token": TOKEN, "chat_id": "-100123", "api_base": tracker.url("")}
    )
    outcomes = await notifier(client).send([telegram.id, slack.id, discord.id, 999], ALERT)
    assert [o.channel_id for o in outcomes] == [slack.id, discord.id, telegram.id]
    assert all(o.ok for o in outcomes)
    by_path = {r.path: json.loads(r.body) for r in tracker.requests}
    text = by_path["/slack/T/B/x"]["text"]
    assert "*FIRING: silence on Binom &lt;main&gt; &amp; @everyone*" in text
    assert "<http://pbm.test/endpoints/7|Open in Postback Monitor>" in text
    assert by_path["/discord/1/y"] == {
        "content": f"FIRING: silence on Binom <main> & @everyone\n{ALERT.sentence}\n{ALERT.link}",
        "allowed_mentions": {"parse": []},
    }
    sent = by_path[f"/bot{TOKEN}/sendMessage"]
    assert sent["chat_id"] == "-100123" and sent["text"].startswith("FIRING: silence on")
    assert "parse_mode" not in sent


async def test_email_goes_through_a_real_smtp_server(
    client: TestClient, smtp_server: SmtpServer
) -> None:
    config = {
        "to": ["ops@example.com", "cto@example.com"],
        "from": "pbm@example.com",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "starttls": False,
    }
    ch = await channel(client, "email", config)
    (outcome,) = await notifier(client).send([ch.id], ALERT)
    assert outcome.ok, outcome
    assert outcome.status == 250
    ((envelope, message),) = smtp_server.inbox.messages
    assert envelope.mail_from == "pbm@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "cto@example.com"]
    assert message["Subject"] == "[Postback Monitor] FIRING: silence on Binom <main> & @everyone"
    body = message.get_content()
    assert ALERT.sentence in body and ALERT.link in body


async def test_smtp_transient_refusal_is_retried_and_permanent_is_not(
    client: TestClient, smtp_server: SmtpServer
) -> None:
    config = {
        "to": ["ops@example.com"],
        "from": "pbm@example.com",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "starttls": False,
    }
    ch = await channel(client, "email", config)
    smtp_server.inbox.refuse_with = "451 try again later"
    (outcome,) = await notifier(client, max_attempts=2).send([ch.id], ALERT)
    assert not outcome.ok and outcome.attempts == 2 and outcome.status == 451
    smtp_server.inbox.refuse_with = "550 no such mailbox"
    (outcome,) = await notifier(client, max_attempts=3).send([ch.id], ALERT)
    assert not outcome.ok and outcome.attempts == 1 and outcome.status == 550


async def test_a_503_is_retried_until_it_is_delivered(client: TestClient, tracker: Tracker) -> None:
    tracker.statuses = [503, 429]
    ch = await channel(client, "discord", {"webhook_url": tracker.url("/d")})
    (outcome,) = await notifier(client).send([ch.id], ALERT)
    assert outcome.ok and outcome.attempts == 3
    log = await log_of(client, ch)
    assert [(d["attempt"], d["ok"], d["status"]) for d in log] == [
        (3, True, 200),
        (2, False, 429),
        (1, False, 503),
    ]
    assert len({d["message_id"] for d in log}) == 1
    assert log[2]["error"] == "the far end answered 503: tracker says 503"
    # Standard Webhooks receivers drop duplicates by webhook-id: the same on each try.
    tracker.statuses = [502]
    hook = await channel(client, "webhook", {"url": tracker.url("/h")})
    await notifier(client).send([hook.id], ALERT)
    ids = {r.header("webhook-id") for r in tracker.requests if r.path == "/h"}
    assert len(ids) == 1


async def test_a_400_is_not_retried_and_gives_up_after_max_attempts(
    client: TestClient, tracker: Tracker
) -> None:
    tracker.statuses = [400]
    ch = await channel(client, "slack", {"webhook_url": tracker.url("/s")})
    (outcome,) = await notifier(client).send([ch.id], ALERT)
    assert not outcome.ok and outcome.attempts == 1 and outcome.status == 400
    tracker.default = 500
    (outcome,) = await notifier(client, max_attempts=3).send([ch.id], ALERT)
    assert not outcome.ok and outcome.attempts == 3 and outcome.status == 500


async def test_the_guard_refuses_a_private_target_without_forward_allow(
    client: TestClient, tracker: Tracker, smtp_server: SmtpServer, config: Config
) -> None:
    from monitor.forwarding.outbound import OutboundClient

    strict = OutboundClient.from_config(config.replace(forward_allow=()))
    await strict.start()
    try:
        app = client.app
        guarded = Notifier(app[CHANNELS], strict, app[METRICS], backoff_base_s=0.01)
        hook = await channel(client, "webhook", {"url": tracker.url("/h")})
        mail = await channel(
            client,
            "email",
            {"to": ["a@b.io"], "from": "c@d.io", "host": "127.0.0.1", "port": smtp_server.port},
        )
        outcomes = await guarded.send([hook.id, mail.id], ALERT)
    finally:
        await strict.close()
    for outcome in outcomes:
        assert not outcome.ok and outcome.attempts == 1
        assert outcome.error is not None and "loopback" in outcome.error
        assert outcome.error.startswith("refused: ")
    assert tracker.requests == [] and smtp_server.inbox.messages == []


async def test_secrets_stay_out_of_errors_and_logs(client: TestClient, tracker: Tracker) -> None:
    path = f"/bot{TOKEN}/sendMessage"
    # A far end that quotes the request path (and so the token) in its error.
    tracker.routes[path] = lambda request: web.Response(status=404, text=f"no {request.path}")
    ch = await channel(
        client, "telegram", {"bot_token": TOKEN, "chat_id": "1", "api_base": tracker.url("")}
    )
    with structlog.testing.capture_logs() as logs:
        (outcome,) = await notifier(client).send([ch.id], ALERT)
    assert (
        not outcome.ok and outcome.error == "the far end answered 404: no /bot<secret>/sendMessage"
    )
    (logged,) = await log_of(client, ch)
    assert TOKEN not in json.dumps(logged)
    assert any(e["event"] == "notification.failed" for e in logs)
    assert TOKEN not in repr(logs) and TOKEN.split(":")[1] not in repr(logs)


async def test_outcomes_are_counted_by_kind(client: TestClient, tracker: Tracker) -> None:
    async def counts() -> dict[tuple[str, str], float]:
        text = await (await client.get("/metrics")).text()
        return {
            (s.labels["kind"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "postback_monitor_notifications_total"
        }

    before = await counts()
    assert before[("email", "failed")] == 0  # every series exists from the start
    tracker.statuses = [400]
    ch = await channel(client, "slack", {"webhook_url": tracker.url("/s")})
    await notifier(client).send([ch.id], ALERT)
    await notifier(client).send([ch.id], ALERT)
    after = await counts()
    assert after[("slack", "failed")] - before[("slack", "failed")] == 1
    assert after[("slack", "delivered")] - before[("slack", "delivered")] == 1


async def test_a_deleted_channel_leaves_no_log_and_is_skipped(
    client: TestClient, tracker: Tracker
) -> None:
    ch = await channel(client, "discord", {"webhook_url": tracker.url("/d")})
    await client.app[CHANNELS].delete(ch.id)
    assert await notifier(client).send([ch.id], ALERT) == []
    assert tracker.requests == []


async def test_the_log_keeps_each_channels_newest_attempts(
    client: TestClient, tracker: Tracker
) -> None:
    store = client.app[CHANNELS]
    ch = await channel(client, "discord", {"webhook_url": tracker.url("/d")})
    other = await channel(client, "slack", {"webhook_url": tracker.url("/s")})
    started = datetime.now(UTC)
    for number in range(1, 6):
        for target in (ch, other):
            entry = Delivery("msg_x", "s", number, started, True, 200, None, 1.0)
            assert await store.log_delivery(target.id, entry, keep=3) is not None
    assert [d["attempt"] for d in await log_of(client, ch)] == [5, 4, 3]
    assert [d["attempt"] for d in await log_of(client, other)] == [5, 4, 3]
