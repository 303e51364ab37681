"""
The crash campaign, short (issue 17, item 1; C{bench/crash.py} runs the
long one): mixed load against the real node (a carrier over SMPP to
apps, apps over SIP and a tenant over HTTP to a vendor's SMSC over the
node's outbound connection, the vendor's mobile-originated messages to
the apps, receipts both ways), the node killed with SIGKILL at random
moments and restarted on its database.  See L{tests.e2e.crash_load}.
"""
from __future__ import annotations

import os

import pytest

from tests.e2e.crash_load import Campaign

pytestmark = pytest.mark.e2e


def test_three_kills_lose_nothing(tmp_path):
    """
    Three SIGKILLs under mixed load, each restart killed once more
    while starting: after each kill, every message any
    sender was told is accepted (submit_sm_resp, SIP 202, HTTP 200,
    deliver_sm_resp) is in the database, every billing record belongs
    to a message and every billed message has its record, and receipts
    are owed only for final messages; at the end every message is
    delivered, failed with a reason or expired, the carrier got the
    receipt of each of its messages and the tenant the final report of
    each of its own, and a copy sent again (to an app, the vendor, a
    receipt to the carrier, a report to the tenant) was only ever one
    not yet confirmed at a kill in between, each copy to an app with
    the message's id as Message-ID.
    """
    seed = int(os.environ.get("CRASH_SEED", "0")) or None
    campaign = Campaign(tmp_path, runs=3, seed=seed, log=print,
                        startup_share=1.0)
    figures = campaign.run()
    print(figures.summary())
    assert figures.runs == 3 and figures.startup_kills == 3
    assert sum(figures.acknowledged.values()) > 0
    assert {"carrier", "app", "tenant", "mo"} <= set(figures.acknowledged)
    assert figures.receipts and figures.vendor_receipts and figures.reports
    assert figures.lost == 0, figures.problems
    # Which process sent each copy is known exactly, so the checks of
    # copies within one process are the strict ones.
    deliveries = [d for app in campaign.apps for d in app.app.deliveries]
    assert deliveries and all(
        campaign.node.life_of("sip_udp", d.source[1], d.at)
        for d in deliveries)
    lives = [life for v in campaign.ledger.receipt_lives.values()
             for life in v]
    assert lives and None not in lives
    assert campaign.smsc.received and all(
        s.session_at for s in campaign.smsc.received)
    assert figures.problems == [], "\n".join(figures.problems) + \
        campaign.node.log()[-4000:]
