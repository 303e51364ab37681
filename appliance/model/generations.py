"""Database generations of the model domain (see L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["appliance"]}, the L{ApplianceRoot} (customers,
    carriers, tariffs...), if absent."""
    from appliance.model.root import ApplianceRoot
    if "appliance" not in root:
        root["appliance"] = ApplianceRoot()


GENERATIONS = (evolve1,)
