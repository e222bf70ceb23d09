"""The alert rules of Postback Monitor, defined once: dashboards/build.py writes them
as Prometheus rules (alerts.yml, prometheus_rules.py) and as Grafana-managed alert
rules (provisioning/alerting/, grafana_alerting.py), so the two cannot drift apart.

An alert is a *value* (PromQL whose result is what ``$value`` shows), a comparison
with a threshold, and an optional *guard* (``and on (...) ...`` clauses that keep
only series with enough traffic, recent runs and the like). Prometheus gets
``value op threshold guard``; Grafana queries ``value guard`` as refId A and
compares it in a threshold (or math) expression, so a series below the threshold is
a normal state rather than a missing one. A threshold may be a per-series PromQL expression
(the silence rule's expected interval); Grafana then queries it as refId B and
compares ``$A > $B`` in a math expression.

Annotations are written with Prometheus templates (``{{ $value }}``,
``{{ $labels.x }}``); grafana_alerting.py rewrites ``$value`` for Grafana. The
recording rules are used by name in the Prometheus expressions; Grafana, which has
no recording rules of its own here, gets their expressions inlined (``inline``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INFO = "postback_monitor:endpoint_info"
INTERVAL = "postback_monitor:endpoint_expected_interval_seconds"
ENDPOINT_NAMES = f"* on (endpoint) group_left (name, url) {INFO}"
# What Grafana should do when the rule's query returns nothing: OK where an empty
# answer means "nothing happened" (no traffic, no forwards, no run); NoData where the
# series always exist while the service is scraped, so nothing means blindness;
# Alerting where nothing means the service is not scraped at all.
QUIET = "OK"
BLIND = "NoData"
DOWN = "Alerting"


@dataclass(frozen=True)
class Record:
    name: str
    expr: str
    comment: str


@dataclass(frozen=True)
class Series:
    """A threshold that differs per series: ``value op matching expr``."""

    matching: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    value: str
    op: str
    threshold: float | Series
    severity: str
    summary: str
    description: str
    no_data: str
    for_: str = ""
    guard: str = ""
    comment: str = ""
    links: dict[str, str] = field(default_factory=dict)

    @property
    def annotations(self) -> dict[str, str]:
        """In the order alerts.yml has always listed them."""
        return {"summary": self.summary, **self.links, "description": self.description}


def number(threshold: float) -> str:
    return f"{threshold:g}"


def prometheus_expr(alert: Alert) -> str:
    if isinstance(alert.threshold, Series):
        limit = f"{alert.threshold.matching} {alert.threshold.expr}"
    else:
        limit = number(alert.threshold)
    guard = f"\n{alert.guard}" if alert.guard else ""
    # On the value's last line when that is a one-liner or a closing parenthesis.
    sep = " " if "\n" not in alert.value or alert.value.endswith("\n)") else "\n"
    return f"{alert.value}{sep}{alert.op} {limit}{guard}"


def inline(expr: str) -> str:
    """``expr`` with each recording rule's name replaced by its expression, for a
    Prometheus that does not load alerts.yml."""
    for record in RECORDS:
        flat = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", record.expr))
        flat = " ".join(flat.split())
        expr = re.sub(rf"{re.escape(record.name)}(?![\w:])", f"({flat})", expr)
    return expr


def one_line(text: str) -> str:
    return " ".join(text.split())


RECORDS = (
    Record(
        INFO,
        """topk by (endpoint) (1,
  max by (endpoint, name, preset, url) (
    postback_monitor_endpoint_info
    or (last_over_time(postback_monitor_endpoint_info[1h]) unless on (job, instance) (up == 1))
  )
)""",
        """Rules of one group run in order: the alerts below see this evaluation's records.

One series per existing endpoint: its name, preset and page. During a failed
scrape (up == 0) the last one seen in the hour stands in, so alerts do not
resolve and fire again; a target that answers without an endpoint means it
was deleted. topk keeps one name while two targets briefly disagree on a rename.""",
    ),
    Record(
        INTERVAL,
        """max by (endpoint) (
  postback_monitor_endpoint_expected_interval_seconds
  or (last_over_time(postback_monitor_endpoint_expected_interval_seconds[1h]) unless on (job, instance) (up == 1))
)""",  # noqa: E501
        """Each endpoint's expected_interval setting, in seconds; none when it is "off" or
the endpoint is deleted (a failed scrape keeps the last value, as above).""",
    ),
)

ENDPOINT_URL = {"endpoint_url": "{{ $labels.url }}"}
RUN_URL = (
    '{{ reReplaceAll "/endpoints/[0-9]+$" "" $labels.url }}'
    "/reconciliations/{{ $labels.reconciliation }}"
)


def share(numerator: str, denominator: str) -> str:
    return f"""(
  {numerator}
    / {denominator}
  {ENDPOINT_NAMES}
)"""


ENOUGH_HITS = (
    "and on (endpoint)\nsum by (endpoint) (increase(postback_monitor_hits_total[15m])) >= 20"
)

ALERTS = (
    Alert(
        "PostbackEndpointSilent",
        f"""(
  time() - max by (endpoint) (
    max_over_time(postback_monitor_last_hit_timestamp_seconds[1h])
    or label_replace(
      max_over_time(postback_monitor_endpoint_created_timestamp_seconds[1h]),
      "since", "created", "", ""
    )
  )
)
{ENDPOINT_NAMES}""",
        ">",
        Series("on (endpoint) group_left", INTERVAL),
        "warning",
        "Endpoint {{ $labels.name }} has received no postback for {{ $value | humanizeDuration }}",
        one_line("""
            No hit has been stored for endpoint {{ $labels.name }} (id {{ $labels.endpoint }})
            for {{ $value | humanizeDuration }}, counted from its last hit or, if it never
            had one, from its creation: longer than its expected interval. Check that the
            tracker or network fires postbacks to this endpoint's capture URL (a rotated
            token, a changed postback template, a paused campaign), and look at
            PostbackCaptureErrors and the dashboard's unknown-token panel. If the endpoint
            is quiet by nature, set its expected_interval (such as "6h", or "off") on
            {{ $labels.url }}/settings."""),
        BLIND,
        for_="1m",
        comment="""Silent since the last hit, or since its creation for an endpoint never hit
(label_replace keeps both series apart, so max takes the later of the two).
max_over_time keeps them through a short scrape outage. The last group_left
keeps the left side's labels (name, url), which a one-to-one match drops.""",
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackDuplicateRateHigh",
        share(
            "sum by (endpoint) (rate(postback_monitor_duplicates_total[15m]))",
            "sum by (endpoint) (rate(postback_monitor_hits_total[15m]))",
        ),
        ">",
        0.05,
        "warning",
        "Endpoint {{ $labels.name }}: {{ $value | humanizePercentage }} of postbacks are "
        "duplicates",
        one_line("""
            Over the last 15 minutes {{ $value | humanizePercentage }} of the hits stored
            for endpoint {{ $labels.name }} (id {{ $labels.endpoint }}) repeat a click id
            and event already captured (more than 5%). The sender is retrying postbacks it
            should not, or fires one conversion several times: conversions may be paid
            twice. Open the endpoint's hits filtered by flag duplicate_click_id
            ({{ $labels.url }}) to see which senders and click ids repeat."""),
        QUIET,
        for_="15m",
        guard=ENOUGH_HITS,
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackFlaggedRateHigh",
        share(
            "sum by (endpoint) (rate(postback_monitor_flagged_hits_total[15m]))",
            "sum by (endpoint) (rate(postback_monitor_hits_total[15m]))",
        ),
        ">",
        0.2,
        "warning",
        "Endpoint {{ $labels.name }}: {{ $value | humanizePercentage }} of postbacks are flagged",
        one_line("""
            Over the last 15 minutes {{ $value | humanizePercentage }} of the hits stored
            for endpoint {{ $labels.name }} (id {{ $labels.endpoint }}) carry a flag (more
            than 20%): unreplaced macros, missing or invalid params, IPs or secrets that
            do not match. The dashboard's "Flagged share by flag" panel shows which flag;
            the endpoint's flagged hits ({{ $labels.url }}) show the params as received.
            Usually the postback template in the tracker or network needs fixing."""),
        QUIET,
        for_="15m",
        guard=ENOUGH_HITS,
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackUnreplacedMacros",
        "sum by (endpoint) "
        '(increase(postback_monitor_flags_total{flag="unreplaced_macro"}[15m]))\n  '
        + ENDPOINT_NAMES,
        ">=",
        3,
        "warning",
        "Endpoint {{ $labels.name }}: postbacks arrive with macros left unreplaced",
        one_line("""
            About {{ $value | humanize }} hits stored for endpoint {{ $labels.name }}
            (id {{ $labels.endpoint }}) in the last 15 minutes carry a param whose value is
            still a macro, such as {clickid} or {payout}: the tracker or network did not
            fill it in, so those conversions cannot be matched or paid. Compare the
            postback URL set in the platform with the one the endpoint's page shows; its
            hits flagged unreplaced_macro ({{ $labels.url }}?flag=unreplaced_macro) show
            which params."""),
        QUIET,
        for_="5m",
        comment="""A macro left as {clickid} is a broken template, not noise: a few in 15 minutes
are enough (PostbackFlaggedRateHigh needs 20% of the hits).""",
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackCaptureErrors",
        "sum by (job, instance) "
        '(rate(postback_monitor_capture_errors_total{status_class="5xx"}[5m]))',
        ">",
        0,
        "critical",
        "{{ $labels.instance }} answers postbacks with 5xx",
        one_line("""
            {{ $labels.instance }} has answered {{ $value | humanize }} capture requests
            per second with a 5xx status for 5 minutes: those postbacks were not stored
            (senders that retry will send them again). 503 means the writer's queue is
            full or the database cannot commit and the spool is full or unusable; check
            the service's logs (writer.batch_failed), the database and free disk space."""),
        QUIET,
        for_="5m",
    ),
    Alert(
        "PostbackWriterBacklog",
        "sum by (job, instance) (postback_monitor_writer_queued_hits)",
        ">",
        1000,
        "warning",
        "{{ $labels.instance }}: {{ $value }} hits waiting for the database writer",
        one_line("""
            More than 1000 hits have been waiting for the writer on {{ $labels.instance }}
            for 2 minutes; capture answers 503 once the queue reaches --queue-max-hits.
            Commits are slow or failing: check the dashboard's commit latency panel,
            the database's load and locks, and the service's logs."""),
        BLIND,
        for_="2m",
    ),
    Alert(
        "PostbackSpoolNotDraining",
        "sum by (job, instance) (postback_monitor_spool_pending_hits)",
        ">",
        0,
        "critical",
        "{{ $labels.instance }}: {{ $value }} acknowledged hits waiting in the spool",
        one_line("""
            {{ $value }} hits on {{ $labels.instance }} were acknowledged and kept in the
            local spool because the database could not take them, and they have not all
            been written for 10 minutes. They are safe on disk, but not in the database
            (not in the API, views or forwards) and the spool fills up. Restore the
            database connection; the service drains the spool by itself."""),
        BLIND,
        for_="10m",
    ),
    Alert(
        "PostbackDatabaseDown",
        "min by (job, instance) (postback_monitor_database_up)",
        "<",
        1,
        "critical",
        "{{ $labels.instance }}: the database does not answer",
        one_line("""
            {{ $labels.instance }} has not reached its database for 2 minutes. Postbacks still go to
            the local spool and are written once it is back; views, API and forwards fail meanwhile.
            Check PostgreSQL, the network to it and DATABASE_URL."""),
        BLIND,
        for_="2m",
    ),
    Alert(
        "PostbackForwardErrorsHigh",
        'sum by (endpoint) (rate(postback_monitor_forwards_total{outcome=~"retrying|failed"}[15m]))'
        """
  / sum by (endpoint) (rate(postback_monitor_forwards_total[15m]))
  """ + ENDPOINT_NAMES,
        ">",
        0.2,
        "warning",
        "Endpoint {{ $labels.name }}: {{ $value | humanizePercentage }} of forward attempts fail",
        one_line("""
            {{ $value | humanizePercentage }} of the attempts to forward the hits of
            endpoint {{ $labels.name }} (id {{ $labels.endpoint }}) to its forward target
            failed over the last 15 minutes. Failed forwards are retried with backoff; the
            endpoint's forward attempts ({{ $labels.url }}) show the status and error of
            each. Check the target URL and that the target is up."""),
        QUIET,
        for_="15m",
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackForwardsFailed",
        'sum by (endpoint) (increase(postback_monitor_forwards_total{outcome="failed"}[15m]))\n  '
        + ENDPOINT_NAMES,
        ">",
        0,
        "critical",
        "Endpoint {{ $labels.name }}: forwards given up",
        one_line("""
            About {{ $value | humanize }} forwards of the hits of endpoint
            {{ $labels.name }} (id {{ $labels.endpoint }}) failed on every attempt in the
            last 15 minutes and will not be sent again by themselves. The hits are stored:
            fix the forward target, then replay them all at once: on the endpoint's page
            ({{ $labels.url }}) filter Forward: failed and press Replay N matching hits,
            or run postback-monitor hits replay {{ $labels.endpoint }} --forward-state
            failed, or POST /api/endpoints/{{ $labels.endpoint }}/replays with
            {"forward_state": "failed"}."""),
        QUIET,
        links=ENDPOINT_URL,
    ),
    Alert(
        "PostbackReconciliationMissing",
        share(
            "max by (endpoint, reconciliation) "
            '(postback_monitor_reconciliation_items{kind="missing_postback"})',
            "max by (endpoint, reconciliation) (postback_monitor_reconciliation_report_rows)",
        ),
        ">",
        0.02,
        "warning",
        "Endpoint {{ $labels.name }}: {{ $value | humanizePercentage }} of the network's "
        "conversions never arrived",
        one_line(f"""
            Reconciliation {{{{ $labels.reconciliation }}}} matched a network report against
            the hits of endpoint {{{{ $labels.name }}}} (id {{{{ $labels.endpoint }}}}):
            {{{{ $value | humanizePercentage }}}} of the report's conversions were never
            captured (more than 2%, at least 5). Open its missing_postback items
            ({RUN_URL}):
            check the postback URL set in the network (its macros, a rotated token), the
            network's own postback log for those conversions, and the capture errors and
            silence around their times. It resolves when a newer reconciliation is below
            the threshold, or 7 days after the run."""),
        QUIET,
        guard="""and on (endpoint, reconciliation)
max by (endpoint, reconciliation) (postback_monitor_reconciliation_items{kind="missing_postback"}) >= 5
and on (endpoint, reconciliation)
time() - max by (endpoint, reconciliation) (postback_monitor_reconciliation_finished_timestamp_seconds) < 7 * 86400""",  # noqa: E501
        comment="""The endpoint's latest reconciliation, finished in the last 7 days, found more
than 2% (and at least 5) of the network report's conversions never captured.
A run over several endpoints carries its counts under each; max by
(endpoint, reconciliation) reads one process's answer once.""",
        links={**ENDPOINT_URL, "reconciliation_url": RUN_URL},
    ),
    Alert(
        "PostbackMonitorDown",
        'up{job="postback-monitor"}',
        "==",
        0,
        "critical",
        "Postback Monitor {{ $labels.instance }} cannot be scraped",
        one_line("""
            Prometheus has not scraped {{ $labels.instance }} for 5 minutes. Postbacks
            sent to it may not be captured, and the other alerts cannot see it. Check
            the process (GET /healthz, /readyz) and its logs. This rule expects the
            scrape job to be named postback-monitor, as in dashboards/compose.yaml."""),
        DOWN,
        for_="5m",
    ),
)
