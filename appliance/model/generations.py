"""Database generations of the model domain (see L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["appliance"]}, the L{ApplianceRoot} (customers,
    carriers, tariffs...), if absent."""
    from appliance.model.root import ApplianceRoot
    if "appliance" not in root:
        root["appliance"] = ApplianceRoot()


def evolve2(root) -> None:
    """Give the root its numbering plan (C{root["appliance"].numbering},
    an L{appliance.model.numbering.NumberingPlan}), if absent."""
    from appliance.model.numbering import NumberingPlan
    app = root["appliance"]
    if getattr(app, "numbering", None) is None:
        app.numbering = NumberingPlan()


GENERATIONS = (evolve1, evolve2)
