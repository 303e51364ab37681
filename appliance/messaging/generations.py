"""Database generations of the messaging domain (see
L{appliance.store.generations})."""


def evolve1(root) -> None:
    """Create C{root["messages"]}, the L{MessageStore} (the durable queue
    every protocol uses), if absent."""
    from appliance.messaging.store import MessageStore
    if "messages" not in root:
        root["messages"] = MessageStore()



def evolve2(root) -> None:
    """Rebuild the message store's account and due indexes as sets of ids
    (C{account_ids}, C{due_at}) and drop the tuple indexes of generation
    1 (C{by_account}, C{due}): less memory per waiting message, less to
    pickle per batch."""
    store = root.get("messages")
    if store is not None:
        store.reindex()


GENERATIONS = (evolve1, evolve2)
