"""Generation 4: the SMPP server's durable state (parts, receipts, ids)."""


def evolve(root) -> None:
    """Create C{root["smpp"]}, the L{appliance.smpp.state.SMPPState}, if
    absent."""
    from appliance.smpp.state import KEY, SMPPState
    if KEY not in root:
        root[KEY] = SMPPState()
