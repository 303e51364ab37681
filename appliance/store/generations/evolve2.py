"""Generation 2: the durable message store (the queue every protocol uses)."""


def evolve(root) -> None:
    """Create C{root["messages"]}, the L{MessageStore}, if absent."""
    from appliance.messaging.store import MessageStore
    if "messages" not in root:
        root["messages"] = MessageStore()
