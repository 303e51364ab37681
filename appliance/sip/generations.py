"""Database generations of the SIP domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """
    Create C{root["registrations"]}, an C{OOBTree} of account username to a
    tuple of L{appliance.sip.bindings.Binding} records, if absent.
    """
    from BTrees.OOBTree import OOBTree
    if "registrations" not in root:
        root["registrations"] = OOBTree()


GENERATIONS = (evolve1,)
