"""Database generations of the SMPP domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["smpp"]}, the L{appliance.smpp.state.SMPPState}
    (concatenation parts, receipts owed, ids), if absent."""
    from appliance.smpp.state import KEY, SMPPState
    if KEY not in root:
        root[KEY] = SMPPState()


def evolve2(root) -> None:
    """Give the L{appliance.smpp.state.SMPPState} C{connection_parts}:
    parts of concatenated messages that vendors send over our outbound
    connections (kept apart from carriers' parts)."""
    from BTrees.OOBTree import OOBTree
    from appliance.smpp.state import KEY
    smpp = root[KEY]
    if smpp.connection_parts is None:
        smpp.connection_parts = OOBTree()


GENERATIONS = (evolve1, evolve2)
