"""Database generations of the messaging domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["messages"]}, the L{MessageStore} (the durable queue
    every protocol uses), if absent."""
    from appliance.messaging.store import MessageStore
    if "messages" not in root:
        root["messages"] = MessageStore()


GENERATIONS = (evolve1,)
