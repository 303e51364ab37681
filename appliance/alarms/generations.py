"""
Generations of the C{alarms} domain: its install step(s), in order, never
edited once landed.
"""


def evolve1(root) -> None:
    """Install C{root["alarms"]}, an empty L{appliance.alarms.model.AlarmsRoot}
    with a new SNMP engine id."""
    from appliance.alarms.model import KEY, AlarmsRoot, new_engine_id
    if KEY not in root:
        obj = root[KEY] = AlarmsRoot()
        obj.engine_id = new_engine_id().hex()


GENERATIONS = (evolve1,)
