"""Platform presets: param names per platform and a ready postback URL template.

A *sender* preset (networks, MMPs) fires postbacks itself: its template carries that
platform's own macros, so the URL is pasted as is into the platform. A *receiver*
preset (trackers, traffic sources) normally receives postbacks: the capture URL
stands in for the receiver while debugging, so the template keeps the receiver's
param names. Trackers' templates use the REPLACE / OPTIONAL fillers (Voluum's
convention) where the upstream network's own macros go; left in, they are flagged
``unreplaced_macro``. See docs/rules.md for the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from monitor.macros import find_macro


@dataclass(frozen=True, slots=True)
class Preset:
    key: str
    name: str
    direction: str  # "sender" or "receiver"
    click_id_param: str
    event_param: str | None
    amount_param: str | None
    currency_param: str | None
    required_params: tuple[str, ...]
    template: str  # postback query string, without "?"
    method: str
    notes: str


PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            key="voluum",
            name="Voluum",
            direction="receiver",
            click_id_param="cid",
            event_param="et",
            amount_param="payout",
            currency_param="currency",
            required_params=("cid",),
            template="cid=REPLACE&payout=OPTIONAL&txid=OPTIONAL&et=OPTIONAL",
            method="GET",
            notes="Replace REPLACE with the network's click id macro (e.g. {aff_sub}, #s2#) "
            "and OPTIONAL with its payout and transaction id macros, or drop them.",
        ),
        Preset(
            key="binom",
            name="Binom",
            direction="receiver",
            click_id_param="cnv_id",
            event_param="cnv_status",
            amount_param="payout",
            currency_param="cnv_currency",
            required_params=("cnv_id",),
            template="cnv_id=REPLACE&payout=OPTIONAL&cnv_status=OPTIONAL&cnv_currency=OPTIONAL",
            method="GET",
            notes="Binom's click.php postback names; put the network's macros in place of "
            "the fillers.",
        ),
        Preset(
            key="redtrack",
            name="RedTrack",
            direction="receiver",
            click_id_param="clickid",
            event_param="type",
            amount_param="sum",
            currency_param="currency",
            required_params=("clickid",),
            template="clickid=REPLACE&sum=OPTIONAL&type=OPTIONAL&currency=OPTIONAL",
            method="GET",
            notes="type is RedTrack's conversion type (case-sensitive); the network's "
            "tokens may be {x}, [x] or ##x##.",
        ),
        Preset(
            key="keitaro",
            name="Keitaro",
            direction="receiver",
            click_id_param="subid",
            event_param="status",
            amount_param="payout",
            currency_param="currency",
            required_params=("subid",),
            template="subid=REPLACE&status=OPTIONAL&payout=OPTIONAL&currency=OPTIONAL&tid=OPTIONAL",
            method="GET",
            notes="status is lead, sale, rejected or rebill; tid makes a rebill unique.",
        ),
        Preset(
            key="everflow",
            name="Everflow",
            direction="sender",
            click_id_param="click_id",
            event_param="event",
            amount_param="payout",
            currency_param=None,
            required_params=("click_id",),
            template="click_id={transaction_id}&event={event_name}&payout={payout_amount}"
            "&sub1={sub1}",
            method="GET",
            notes="Partner postback. Everflow blanks unknown macros instead of sending "
            "them, so a wrong macro name shows up as missing_param.",
        ),
        Preset(
            key="cake",
            name="CAKE",
            direction="sender",
            click_id_param="click_id",
            event_param=None,
            amount_param="payout",
            currency_param=None,
            required_params=("click_id",),
            template="click_id=#s2#&payout=#price#&lead_id=#leadid#&offer_id=#oid#",
            method="GET",
            notes="Affiliate postback with #token# macros; s2 usually carries the click "
            "id. An unreplaced #token# cuts the URL at # (the rest is lost).",
        ),
        Preset(
            key="tune",
            name="TUNE / HasOffers",
            direction="sender",
            click_id_param="click_id",
            event_param=None,
            amount_param="payout",
            currency_param=None,
            required_params=("click_id",),
            template="click_id={aff_sub}&transaction_id={transaction_id}&payout={payout}"
            "&offer_id={offer_id}",
            method="GET",
            notes="Affiliate postback; aff_sub carries the affiliate's click id, "
            "transaction_id is TUNE's own.",
        ),
        Preset(
            key="affise",
            name="Affise",
            direction="sender",
            click_id_param="click_id",
            event_param="goal",
            amount_param="sum",
            currency_param="currency",
            required_params=("click_id",),
            template="click_id={sub1}&action_id={transactionid}&goal={goal}&status={status}"
            "&sum={sum}&currency={currency}",
            method="GET",
            notes="Affise has no {clickid} macro for affiliates: pass your click id in "
            "sub1 on the tracking link. Status 1 approved, 2 pending, 3 declined, 5 hold.",
        ),
        Preset(
            key="scaleo",
            name="Scaleo",
            direction="sender",
            click_id_param="click_id",
            event_param="goal",
            amount_param="payout",
            currency_param="currency",
            required_params=("click_id",),
            template="click_id={aff_click_id}&goal={goal_id}&payout={payout}"
            "&currency={currency}&sub_id1={sub_id1}",
            method="GET",
            notes="Affiliate postback; {aff_click_id} is the affiliate's click id. The "
            "goal, payout and currency macro names are unverified against Scaleo's docs.",
        ),
        Preset(
            key="propellerads",
            name="PropellerAds",
            direction="receiver",
            click_id_param="visitor_id",
            event_param=None,
            amount_param="payout",
            currency_param=None,
            required_params=("visitor_id",),
            template="visitor_id={externalid}&payout={payout}",
            method="GET",
            notes="The tracker-to-PropellerAds postback, with Voluum/Binom macros: the "
            "campaign passes ${SUBID} to the tracker as its external id.",
        ),
        Preset(
            key="appsflyer",
            name="AppsFlyer",
            direction="sender",
            click_id_param="appsflyer_id",
            event_param="event_name",
            amount_param="event_revenue",
            currency_param="event_revenue_currency",
            required_params=("appsflyer_id", "event_name"),
            template="",
            method="POST",
            notes="Push API: AppsFlyer chooses the fields (JSON body or query), so the "
            "capture URL is used as is. appsflyer_id is per device: repeated in-app "
            "events of one device share it, so consider a dedupe window.",
        ),
        Preset(
            key="adjust",
            name="Adjust",
            direction="sender",
            click_id_param="adid",
            event_param="event",
            amount_param="revenue",
            currency_param="currency",
            required_params=("adid",),
            template="adid={adid}&activity_kind={activity_kind}&event={event_name}"
            "&revenue={revenue}&currency={currency}&created_at={created_at}"
            "&tracker={tracker}",
            method="GET",
            notes="Callback URL; Adjust drops placeholders it has no data for (they "
            "arrive empty). adid is per device, as with AppsFlyer.",
        ),
        Preset(
            key="generic",
            name="Generic",
            direction="sender",
            click_id_param="click_id",
            event_param="event",
            amount_param="payout",
            currency_param="currency",
            required_params=("click_id",),
            template="click_id={click_id}&event={event}&payout={payout}&currency={currency}",
            method="GET",
            notes="Common names; replace each {macro} with the sender's own macro.",
        ),
    )
}


def get_preset(key: str) -> Preset | None:
    return PRESETS.get(key.strip().lower())


def postback_url(preset: Preset | str, capture_url: str) -> str:
    """The capture URL with the preset's postback query appended; KeyError if unknown."""
    if isinstance(preset, str):
        found = get_preset(preset)
        if found is None:
            raise KeyError(preset)
        preset = found
    if not preset.template:
        return capture_url
    base = capture_url.split("#", 1)[0]
    if "?" not in base:
        separator = "?"
    elif base.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return f"{base}{separator}{preset.template}"


def template_macros(preset: Preset) -> list[str]:
    """The macros (or fillers) the preset's template uses, in order."""
    macros = []
    for part in preset.template.split("&") if preset.template else ():
        value = part.partition("=")[2]
        token = find_macro(value)
        if token is not None:
            macros.append(token)
    return macros


def preset_list() -> list[dict[str, object]]:
    """All presets as JSON-ready dicts for GET /api/presets."""
    listed = []
    for preset in PRESETS.values():
        entry: dict[str, object] = asdict(preset)
        entry["required_params"] = list(preset.required_params)
        entry["macros"] = template_macros(preset)
        listed.append(entry)
    return listed
