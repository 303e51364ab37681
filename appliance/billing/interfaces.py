"""
Interfaces of the billing domain: the charger the messaging core calls,
the record store, and the billing service the shell asks.
"""
from __future__ import annotations

from zope.interface import Attribute, Interface


class ICharger(Interface):
    """
    The messaging core's billing seam (see
    L{appliance.messaging.core.NoCharge}).
    """

    def authorize(submission, transport, account, route, now):
        """
        Attribute the message to its payer and rate it; refuse it when the
        payer cannot be charged.  Nothing is written.

        @return: an opaque charge for L{accepted}.
        @raise appliance.messaging.vocabulary.Refused: with the text the
            sender's user sees.
        """

    def accepted(raw, message, charge):
        """Inside the accept transaction: reserve and write the record."""

    def state_changed(raw, message, state):
        """Inside a state change's transaction: settle or return."""


class IRecordStore(Interface):
    """Billing records per payer and month, with running totals."""

    def add(record):
        """Store a new record (and count it)."""

    def get(payer, time, id):
        """The record of a message, or None."""

    def set_state(payer, time, id, state):
        """Change a record's state; returns the new record or None."""

    def restate(payer, time, id, state):
        """set_state without building records; returns the record's packed
        fields before the change, or None."""

    def records(payer, start, end):
        """A payer's records accepted in [start, end), in time order."""

    def totals(payer, month):
        """Running totals of a payer-month."""

    def count(payer, month):
        """How many records a payer-month holds."""

    def payers():
        """Every payer with records."""


class IBillingService(Interface):
    """The billing service as the shell and the node see it."""

    charger = Attribute("The L{ICharger} given to the messaging core.")

    def statistics():
        """Counters per carrier for the current month (from the database)."""

    def held(payer):
        """The amount reserved in flight (authorized, not yet stored)."""
