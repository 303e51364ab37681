"""Database generations of the billing domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["billing"]}, the L{appliance.billing.model.BillingRoot}
    (terms and records), if absent."""
    from appliance.billing.model import KEY, BillingRoot
    if KEY not in root:
        root[KEY] = BillingRoot()


GENERATIONS = (evolve1,)
