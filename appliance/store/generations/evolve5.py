"""Generation 5: billing terms and records."""


def evolve(root) -> None:
    """Create C{root["billing"]}, the L{appliance.billing.model.BillingRoot},
    if absent."""
    from appliance.billing.model import KEY, BillingRoot
    if KEY not in root:
        root[KEY] = BillingRoot()
