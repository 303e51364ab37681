"""Generation 1: the configuration root (customers, carriers, tariffs...)."""


def evolve(root) -> None:
    """Create C{root["appliance"]}, the L{ApplianceRoot}, if absent."""
    from appliance.model.root import ApplianceRoot
    if "appliance" not in root:
        root["appliance"] = ApplianceRoot()
