"""Database generations of the billing domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["billing"]}, the L{appliance.billing.model.BillingRoot}
    (terms and records), if absent."""
    from appliance.billing.model import KEY, BillingRoot
    if KEY not in root:
        root[KEY] = BillingRoot()


def evolve2(root) -> None:
    """Give C{root["billing"]} its authorization rules container, if
    absent."""
    from BTrees.OOBTree import OOBTree
    from appliance.billing.model import KEY
    billing = root[KEY]
    if billing.rules is None:
        billing.rules = OOBTree()


GENERATIONS = (evolve1, evolve2)
