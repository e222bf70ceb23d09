"""The JSON API answers as its OpenAPI document says: schemathesis against a live server.

Every operation gets generated requests (valid and invalid) with the admin token;
no answer may be a 5xx or break the documented schema.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

import monitor.server.app  # noqa: F401 - imports every module that adds paths to the document
from monitor.web.api import openapi
from tests.conftest import AUTH
from tests.helpers.server import ServerProcess

# Operations that send requests to a URL taken from the input (the tester, replay
# to a URL given now) are left out: generated URLs could name any host, and tests
# only ever send traffic to this machine. tests/integration/test_tester.py
# and test_forward.py cover them against local servers. Bulk replay stays in: it sends
# only stored hits to a stored target, and the generated endpoints have no hits
# (tests/integration/test_replays.py covers it against a local tracker). A channel's
# test notification goes to the stored channel's URL or SMTP host, which generated
# channels could point anywhere: tests/integration/test_channels_*.py cover it.
OUTBOUND = r"^/api/(tester|hits/\{hit_id\}/replay|channels/\{channel_id\}/test)$"
schema = schemathesis.openapi.from_dict(openapi.document()).exclude(path_regex=OUTBOUND)


def test_outbound_operations_are_left_out() -> None:
    kept = {o.ok().path for o in schema.get_all_operations()}
    assert "/api/tester" not in kept
    assert "/api/hits/{hit_id}/replay" not in kept
    assert "/api/channels/{channel_id}/test" not in kept
    assert "/api/channels/{channel_id}/deliveries" in kept
    assert "/api/endpoints" in kept


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(
    case: schemathesis.Case, live_server: ServerProcess
) -> None:
    # Every check but "valid data accepted": the document gives the shape of the
    # settings, not their meaning (a well-formed but unknown CIDR gets a 400).
    case.call_and_validate(
        base_url=live_server.url,
        headers=AUTH,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
