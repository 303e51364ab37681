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


def evolve2(root) -> None:
    """
    Create C{root["sip_bindings"]}, an C{OOBTree} of C{(username, node)} to
    the tuple of binding records (L{appliance.sip.bindings.Binding.record})
    that node holds for the account, and C{root["sip_config_serial"]}, a
    C{BTrees.Length} bumped after each configuration commit (other nodes
    rebuild their account snapshot when it moves), if absent.  The
    bindings of C{root["registrations"]} are claimed by the first node
    that loads them (L{appliance.sip.registrar.BindingStore.load}).
    """
    from BTrees.Length import Length
    from BTrees.OOBTree import OOBTree
    if "sip_bindings" not in root:
        root["sip_bindings"] = OOBTree()
    if "sip_config_serial" not in root:
        root["sip_config_serial"] = Length()


GENERATIONS = (evolve1, evolve2)
