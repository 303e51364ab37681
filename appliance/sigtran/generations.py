"""
Generations of the C{ss7} domain: its install step(s), in order, never
edited once landed.
"""


def evolve1(root) -> None:
    """Install C{root["ss7"]}, an empty L{appliance.sigtran.model.SS7Root}."""
    from appliance.sigtran.model import KEY, SS7Root
    if KEY not in root:
        root[KEY] = SS7Root()


GENERATIONS = (evolve1,)
