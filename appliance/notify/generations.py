"""
Generations of the C{notify} domain: its install step(s), in order, never
edited once landed.
"""


def evolve1(root) -> None:
    """Install C{root["notify"]}, an empty L{appliance.notify.model.NotifyRoot}."""
    from appliance.notify.model import KEY, NotifyRoot
    if KEY not in root:
        root[KEY] = NotifyRoot()


GENERATIONS = (evolve1,)
