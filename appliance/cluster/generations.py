"""Database generations of the cluster domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["cluster"]}, the L{appliance.cluster.model.ClusterRoot}
    (nodes, leases, hand-overs), if absent."""
    from appliance.cluster.model import KEY, ClusterRoot
    if KEY not in root:
        root[KEY] = ClusterRoot()


def evolve2(root) -> None:
    """Create C{root["cluster"].receipt_handed} (receipts handed to the
    node holding their carrier's bind), if absent."""
    from BTrees.LOBTree import LOBTree
    c = root["cluster"]
    if c.receipt_handed is None:
        c.receipt_handed = LOBTree()


GENERATIONS = (evolve1, evolve2)
