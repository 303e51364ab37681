"""Interfaces of the storage domain: the ZODB database as the node sees it."""
from zope.interface import Attribute, Interface


class IStorage(Interface):
    """
    The node's database, owned by the storage service and used from the
    reactor thread only.

    Configuration changes use L{transaction} or L{run}: synchronous, short,
    one ZODB transaction each, never spanning a C{yield}. High-rate writes
    (accepting a message, a state change, a billing record) use L{batch}:
    many of them share one commit, and each caller's Deferred fires only
    after that commit is on disk.  The commit itself may run in a writer
    thread of the storage's own: reads (L{root}, L{messages}) see a batch
    once its Deferreds fire, never before.
    """

    db = Attribute("The open C{ZODB.DB}.")

    def root():
        """
        @return: the L{appliance.model.interfaces.IApplianceRoot} as seen by
            the reactor thread's connection.
        """

    def messages():
        """
        @return: the L{appliance.messaging.interfaces.IMessageStore}.
        """

    def transaction(user="", note=""):
        """
        A context manager around one ZODB transaction: yields the root,
        commits on normal exit, aborts on an exception (which propagates).
        The user and note go into the transaction's metadata (audit trail).
        Change listeners run after the commit.
        """

    def run(fn, *args, user="", note="", **kwargs):
        """
        Call C{fn(root, *args, **kwargs)} in a transaction, retrying on
        C{ConflictError} a few times.

        @return: what C{fn} returned.
        """

    def batch(fn, *args, **kwargs):
        """
        Queue C{fn(root, *args, **kwargs)} for the next batched commit.
        C{fn} runs on the reactor thread (it may read reactor state), may
        be run again (a conflict, a failing neighbour), and reaches
        persistent objects only through the C{root} it is given (the
        writer's connection), never through L{root} or L{messages}; it
        returns plain data.  After-commit hooks it registers run on the
        reactor thread once the commit is back.

        @return: a Deferred that fires with C{fn}'s result once the commit
            holding it is on disk, or fails with C{fn}'s exception (that
            call alone is rolled back, by savepoint) or with the commit's.
        """

    def flush():
        """
        Commit whatever is queued now.

        @return: a Deferred that fires when nothing queued before the call
            is left uncommitted.
        """

    def add_change_listener(listener):
        """
        Call C{listener(note)} after every committed configuration
        transaction, so services can reconcile (rebuild snapshots, add or
        remove listeners, binds...).
        """
