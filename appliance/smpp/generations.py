"""Database generations of the SMPP domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["smpp"]}, the L{appliance.smpp.state.SMPPState}
    (concatenation parts, receipts owed, ids), if absent."""
    from appliance.smpp.state import KEY, SMPPState
    if KEY not in root:
        root[KEY] = SMPPState()


GENERATIONS = (evolve1,)
