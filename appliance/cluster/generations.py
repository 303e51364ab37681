"""Database generations of the cluster domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["cluster"]}, the L{appliance.cluster.model.ClusterRoot}
    (nodes, leases, hand-overs), if absent."""
    from appliance.cluster.model import KEY, ClusterRoot
    if KEY not in root:
        root[KEY] = ClusterRoot()


GENERATIONS = (evolve1,)
