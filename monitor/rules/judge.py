"""The judge: one hit's params and an endpoint's compiled rules in, a verdict out.

``judge`` runs on every captured hit, so it must stay fast and total: no I/O, never
raises, whatever the sender put on the wire. Duplicates are settled by the
database: ``judge`` only says which key (click id, event) a hit dedupes on, and the
writer calls ``duplicate_flag`` when the key was seen before. docs/rules.md is the
user-facing description of every flag here.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

from monitor.model.verdict import Flag, Verdict, clip, make_flag
from monitor.rules.compiler import ALIAS_GROUPS, Rules, secret_bytes
from monitor.rules.currencies import is_currency
from monitor.rules.macros import find_macro
from monitor.rules.networks import IPNetwork
from monitor.rules.statuses import find_status
from monitor.rules.test_traffic import judge_test_traffic

# Past this many, further unreplaced macros of one hit are not flagged one by one.
MAX_MACRO_FLAGS = 20

# A plain decimal, negative allowed: a negative one is negative_amount's business.
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# The longest amount kept as a number (digits, the point aside); longer ones are None.
MAX_AMOUNT_DIGITS = 40


def judge(
    rules: Rules,
    params: Sequence[tuple[str, str]],
    *,
    remote_ip: str | None,
    headers: Sequence[tuple[str, str]],
) -> Verdict:
    """Flags for one hit; params are query params then body params (first name wins)."""
    values: dict[str, str] = {}
    flags: list[Flag] = []
    # One flag per param: the first applicable of unreplaced_macro, missing_param,
    # secret_mismatch, invalid_amount or negative_amount, invalid_currency.
    flagged: set[str] = set()
    macro_flags = 0
    for name, raw in params:
        value = raw.strip()
        values.setdefault(name, value)
        if name in flagged or macro_flags >= MAX_MACRO_FLAGS:
            continue
        token = find_macro(value)
        if token is None or (name == rules.secret_param and _secret_matches(rules, value)):
            continue
        flagged.add(name)
        macro_flags += 1
        flags.append(
            make_flag(
                "unreplaced_macro",
                name,
                value,
                f"Parameter {name} still holds the placeholder {clip(token)}, "
                "so the sender did not replace it with a real value.",
                macro=clip(token),
            )
        )

    for name in rules.required_params:
        if name in flagged or values.get(name):
            continue
        flagged.add(name)
        flags.append(_missing(name, values.get(name), values))

    if rules.allowed_networks is not None:
        problem = _ip_problem(rules.allowed_networks, remote_ip)
        if problem is not None:
            flags.append(make_flag("ip_not_allowed", None, remote_ip, problem))

    if rules.secret is not None:
        flag = _secret_flag(rules, values, headers, flagged)
        if flag is not None:
            flags.append(flag)

    # The status is read before the amounts: a negative amount is a refund's right
    # sign when the hit is a reversal (RedTrack's negative sum), odd anywhere else.
    status_param, status_value, status = find_status(rules.status_names, values, rules.status_table)
    for name in rules.amount_names:
        value = values.get(name, "")
        if not value or name in flagged:
            continue
        if _AMOUNT.fullmatch(value) is None:
            flagged.add(name)
            flags.append(
                make_flag(
                    "invalid_amount",
                    name,
                    value,
                    f"Amount parameter {name} is {_quote(value)}, which is not a plain "
                    "decimal like 12, 1.50 or -5.",
                )
            )
        elif value.startswith("-") and status != "reversal" and Decimal(value) < 0:
            flagged.add(name)
            flags.append(_negative(name, value, status, status_value))
    for name in rules.currency_names:
        value = values.get(name, "")
        if value and name not in flagged and not is_currency(value):
            flagged.add(name)
            flags.append(
                make_flag(
                    "invalid_currency",
                    name,
                    value,
                    f"Currency parameter {name} is {_quote(value)}, which is not an "
                    "ISO 4217 code like USD or EUR.",
                )
            )

    click_id_param, click_id = _first_present(rules.click_id_names, values)
    event_param, event = _first_present(rules.event_names, values)
    test = judge_test_traffic(rules.test_traffic, values, click_id, click_id_param, remote_ip)
    if test is not None:
        flags.append(test)
    real_click_id = bool(click_id) and find_macro(click_id) is None
    dedupe_key = None
    if real_click_id and rules.dedupe_scope != "off":
        with_event = rules.dedupe_scope == "click_id_event" and event and find_macro(event) is None
        part = event if with_event and event else ""
        if rules.dedupe_scope == "click_id_event" and status and status_param != event_param:
            # A status in a param of its own (Affise status, Scaleo conv_status) is part
            # of the key: the approval of a pending conversion is news, not a repeat.
            part = f"{part}|{status_value}"
        dedupe_key = (click_id, part)
    amount_param, amount = _first_present(rules.amount_names, values)
    _, currency = _first_present(rules.currency_names, values)
    return Verdict(
        flags=flags,
        click_id=click_id or None,
        event=event or None,
        click_id_param=click_id_param,
        dedupe_key=dedupe_key,
        dedupe_window_s=rules.dedupe_window_s,
        amount=_valid_amount(amount),
        amount_param=amount_param,
        currency=currency.upper() if is_currency(currency) else None,
        status=status,
        status_param=status_param,
        status_value=clip(status_value) if status_param is not None else None,
        # A test postback (by status or by the test_traffic rule) is no step of the
        # click's life, as it is no original for duplicates.
        status_tracked=real_click_id and status not in (None, "test") and test is None,
    )


def _negative(name: str, value: str, status: str | None, status_value: str | None) -> Flag:
    """negative_amount: a minus sign on a hit that is no reversal, so the payout would
    be subtracted (a refund sent with the wrong status, or a sign mix-up)."""
    seen = f"status {status}" if status else "no reversal status"
    if status and status_value:
        seen += f" ({_quote(status_value)})"
    return make_flag(
        "negative_amount",
        name,
        value,
        f"Amount parameter {name} is {_quote(value)}, a negative amount on a hit with "
        f"{seen}; only a reversal (refund, chargeback) is expected to be negative.",
        status=status,
    )


def _valid_amount(value: str) -> Decimal | None:
    """The amount as an exact decimal when it is one ``invalid_amount`` accepts (a
    negative one too: it is stored as sent, flagged or not) and
    fits ``numeric`` comfortably (at most MAX_AMOUNT_DIGITS digits: hundreds of digits
    are no payout, and the metric turns it into a float)."""
    if _AMOUNT.fullmatch(value) is None or len(value.lstrip("-")) > MAX_AMOUNT_DIGITS + 1:
        return None
    return Decimal(value)


def amount_and_currency(
    rules: Rules, params: Sequence[Sequence[str]]
) -> tuple[str | None, str | None]:
    """The amount and currency a hit carries, as sent (trimmed), or None when absent or
    empty: the values ``judge`` checks, read the same way (query params then body
    params, first name wins, the first of the rules' names that has a value)."""
    values: dict[str, str] = {}
    for name, raw in params:
        values.setdefault(name, raw.strip())
    _, amount = _first_present(rules.amount_names, values)
    _, currency = _first_present(rules.currency_names, values)
    return amount or None, currency or None


def duplicate_flag(verdict: Verdict, first_hit_id: uuid.UUID) -> Flag:
    """The duplicate_click_id flag for a hit whose dedupe key was already seen."""
    event = verdict.dedupe_key[1] if verdict.dedupe_key else ""
    status = ""
    sent = verdict.status_value
    if verdict.status and sent and event.endswith(f"|{sent}"):
        event, status = event[: -len(sent) - 1], sent
    scope = f" with event {_quote(event)}" if event else ""
    if status:
        scope += f"{' and' if event else ' with'} status {_quote(status)}"
    return make_flag(
        "duplicate_click_id",
        verdict.click_id_param,
        verdict.click_id,
        f"Click id {_quote(verdict.click_id or '')}{scope} was already captured on this "
        f"endpoint, first by hit {first_hit_id}.",
        first_hit_id=str(first_hit_id),
    )


def _first_present(names: tuple[str, ...], values: Mapping[str, str]) -> tuple[str | None, str]:
    """The first name with a non-empty value; else the first name present (empty)."""
    first_empty = None
    for name in names:
        value = values.get(name)
        if value:
            return name, value
        if value is not None and first_empty is None:
            first_empty = name
    return first_empty, ""


def _missing(name: str, value: str | None, values: Mapping[str, str]) -> Flag:
    state = "is empty" if value is not None else "is missing"
    hint = _did_you_mean(name, values) if value is None else None
    message = f"Required parameter {name} {state}"
    if hint is not None:
        message += f"; did you mean {hint}?"
        return make_flag("missing_param", name, value, message, did_you_mean=hint)
    return make_flag("missing_param", name, value, message + ".")


def _did_you_mean(name: str, values: Mapping[str, str]) -> str | None:
    lowered = name.lower()
    squashed = _squash(name)
    present = [other for other in values if values[other]] or list(values)
    for other in present:
        if other.lower() == lowered:
            return other
    for other in present:
        if _squash(other) == squashed or _squash(other.rsplit(".", 1)[-1]) == squashed:
            return other
    for group in ALIAS_GROUPS:
        if any(_squash(alias) == squashed for alias in group):
            for alias in group:
                if values.get(alias):
                    return alias
    return None


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")


def _ip_problem(networks: tuple[IPNetwork, ...], remote_ip: str | None) -> str | None:
    if not remote_ip:
        return "The sender's IP address is unknown, so it cannot match allowed_ips."
    try:
        address = ipaddress.ip_address(remote_ip.strip())
    except ValueError:
        return f"The sender's address {_quote(remote_ip)} is not an IP address."
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in networks:
        if address.version == network.version and address in network:
            return None
    return f"The request came from {address}, which is not in allowed_ips."


def _secret_matches(rules: Rules, value: str) -> bool:
    return rules.secret is not None and hmac.compare_digest(secret_bytes(value), rules.secret)


def _secret_flag(
    rules: Rules,
    values: Mapping[str, str],
    headers: Sequence[tuple[str, str]],
    flagged: set[str],
) -> Flag | None:
    if rules.secret_param is not None:
        where, param = f"parameter {rules.secret_param}", rules.secret_param
        if param in flagged:
            return None
        received = values.get(param)
    else:
        wanted = (rules.secret_header or "").lower()
        where, param = f"header {rules.secret_header}", None
        received = None
        for header, value in headers:
            if header.lower() == wanted:
                received = value.strip()
                break
    if received and _secret_matches(rules, received):
        return None
    if not received:
        message = (
            f"The shared secret is missing: {where} is {'empty' if received == '' else 'absent'}."
        )
        return make_flag("secret_mismatch", param, None, message, source=where)
    shown = _redact(received)
    message = f"The shared secret in {where} does not match (received {shown})."
    return make_flag("secret_mismatch", param, shown, message, source=where)


def _redact(value: str) -> str:
    """Enough to recognise an old token, never enough to replay one."""
    if len(value) < 8:
        return f"***, {len(value)} characters"
    return f"{value[:2]}***, {len(value)} characters"


def _quote(value: str) -> str:
    return f'"{clip(value)}"'
