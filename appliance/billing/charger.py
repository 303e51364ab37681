# -*- test-case-name: tests.billing.test_charger -*-
"""
The charger: the messaging core's billing seam (L{ICharger}).

C{authorize} runs before anything is stored.  It attributes the message
to its payer by the authorization rules (a carrier, identified by the
SMPP bind the server resolved to it; an account, by its SIP digest
identity; an HTTP tenant; a vendor connection), rates it with the payer's
tariff (the carrier's; for an account, its product's), and refuses it
(L{Refused}, with a sentence the sender's user can read) when the tariff
has no price for the destination or a prepaid payer's balance, less what
is held for messages authorized but not yet stored, cannot cover it.  An
account that receives pays nothing: only the sending side is a payer.

C{accepted} and C{state_changed} run inside the batched transaction that
stores the message or changes its state: the first debits a prepaid
balance (the reservation) and writes the record, the second brings the
record to the message's state and, when a prepaid message fails or
expires, returns the reservation.  Both only touch the database, so a
batch that is re-run or aborted leaves nothing behind; the in-memory hold
is released by the transaction's after-commit hook (and expires anyway).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from appliance.billing.interfaces import ICharger
from appliance.billing.model import KEY, billing_of
from appliance.billing.rating import NoPrice, Rate, RatingTariff, rate
from appliance.billing.records import Record
from appliance.http.model import tenant_of
from appliance.messaging.vocabulary import Refused
from appliance.model.numbers import normalize_e164

#: Direction and rule by origin kind.
_ATTRIBUTION = {
    "carrier": ("terminating", "carrier by SMPP system_id"),
    "account": ("originating", "account by SIP digest identity"),
    "http": ("originating", "HTTP tenant"),
    "tenant": ("originating", "HTTP tenant"),
    "connection": ("terminating", "vendor connection"),
    "map": ("terminating", "MSC by global title (mo-forwardSM)"),
}


class NoTariff(Refused):
    """The payer's tariff has no price for the destination (SMPP:
    C{ESME_RINVDSTADR}; SIP 402)."""

    kind = "destination"


class NoFunds(Refused):
    """A prepaid payer's balance does not cover the message (SMPP:
    C{ESME_RSUBMITFAIL}; SIP 402)."""


@dataclass(frozen=True)
class Charge:
    """
    What C{authorize} decided for one message.

    @ivar payer: C{kind:name}.
    @ivar direction: C{terminating} or C{originating}.
    @ivar rule: the authorization rule that matched.
    @ivar rate: the rate, or C{None} when the payer has no tariff.
    @ivar prepaid: whether the amount is reserved from a balance.
    @ivar hold: the in-memory hold's serial (0: none).
    """
    payer: str
    direction: str
    rule: str
    rate: Rate | None
    prepaid: bool = False
    hold: int = 0

    @property
    def amount(self) -> Decimal:
        """The amount to charge."""
        return self.rate.amount if self.rate is not None else Decimal(0)


@implementer(ICharger)
class Charger:
    """
    Rates, reserves and records (see the module docstring).

    @ivar tariffs: tariff name to L{RatingTariff}, rebuilt after each
        configuration commit.
    """

    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime,
                 hold_timeout: float = 300.0) -> None:
        """
        @param storage: the L{IStorage} (its C{root()} is read on the
            reactor thread).
        @param clock: the reactor's time.
        @param hold_timeout: seconds after which a hold whose transaction
            never committed is forgotten.
        """
        self.storage = storage
        self.clock = clock
        self.hold_timeout = hold_timeout
        self.tariffs: dict[str, RatingTariff] = {}
        self._holds: dict[str, dict[int, tuple[Decimal, float]]] = {}
        self._serial = itertools.count(1)
        self.refused = 0

    # -- configuration ---------------------------------------------------

    def start(self) -> None:
        """Build the tariff snapshots and rebuild them after each commit."""
        self.rebuild()
        self.storage.add_change_listener(self._changed)

    def stop(self) -> None:
        """Stop following configuration commits."""
        try:
            self.storage.remove_change_listener(self._changed)
        except ValueError:
            pass

    def _changed(self, note: str) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """Snapshot every tariff with its billing terms."""
        root = self.storage.root()
        billing = billing_of(root)
        self.tariffs = {t.name: billing.rating_tariff(t)
                        for t in root.tariffs.values()}

    # -- holds ---------------------------------------------------------

    def held(self, payer: str) -> Decimal:
        """
        @param payer: C{kind:name}.
        @return: the amount authorized for it and not yet stored.
        """
        holds = self._holds.get(payer)
        if not holds:
            return Decimal(0)
        oldest = self.clock.seconds() - self.hold_timeout
        for serial in [s for s, (_, t) in holds.items() if t < oldest]:
            del holds[serial]
        return sum((amount for amount, _ in holds.values()), Decimal(0))

    def _hold(self, payer: str, amount: Decimal) -> int:
        serial = next(self._serial)
        self._holds.setdefault(payer, {})[serial] = (amount,
                                                     self.clock.seconds())
        return serial

    def _release(self, status: bool, payer: str, serial: int) -> None:
        holds = self._holds.get(payer)
        if holds is not None:
            holds.pop(serial, None)
            if not holds:
                del self._holds[payer]

    # -- the seam --------------------------------------------------------

    def authorize(self, submission: Any, transport: str,
                  account: str | None, route: str, now: float) -> Charge:
        """
        Attribute, rate, and check the payer can pay.

        @param submission: the L{Submission}.
        @param transport: where it goes (C{sip}, C{smpp}).
        @param account: the receiving account, if local (it pays nothing).
        @param route: the route name.
        @param now: the acceptance time (the price in force then applies).
        @return: the L{Charge}.
        @raise Refused: no price for the destination, or not enough
            balance.
        """
        kind = submission.origin_kind
        direction, rule = _ATTRIBUTION.get(kind, ("terminating", kind))
        payer = f"{kind}:{submission.origin}"
        root = self.storage.root()
        billing = billing_of(root)
        tariff_name, prepaid, balance = None, False, Decimal(0)
        if kind == "carrier":
            carrier = root.carriers.get(submission.origin)
            if carrier is not None:
                tariff_name = carrier.tariff
                if carrier.system_id:
                    rule = f"carrier by SMPP system_id {carrier.system_id}"
                terms = billing.terms("carriers", carrier)
                if terms is not None and terms.prepaid:
                    prepaid, balance = True, terms.balance
        elif kind == "account":
            sender = root.accounts.get(submission.origin)
            if sender is not None:
                product = root.products.get(sender.product) \
                    if sender.product else None
                if product is not None:
                    tariff_name = billing.product_tariff(product,
                                                         root.tariffs)
                terms = billing.terms("accounts", sender)
                if terms is not None and terms.prepaid:
                    prepaid, balance = True, sender.balance
        elif kind == "tenant":
            tenant = tenant_of(root, submission.origin)
            if tenant is not None:
                tariff_name = tenant.tariff
                rule = f"HTTP tenant {tenant.name}"
                prepaid, balance = tenant.prepaid, tenant.balance
        charged = None
        if tariff_name is not None:
            tariff = self.tariffs.get(tariff_name)
            if tariff is None:      # created in this very turn
                self.rebuild()
                tariff = self.tariffs.get(tariff_name)
            if tariff is not None:
                try:
                    charged = rate(tariff, normalize_e164(
                        submission.recipient), submission.parts, now)
                except NoPrice as e:
                    self._refuse(payer, submission, NoTariff(str(e)))
        if prepaid and charged is not None and charged.amount > 0:
            available = balance - self.held(payer)
            if charged.amount > available:
                self._refuse(payer, submission, NoFunds(
                    f"Insufficient balance: the message costs "
                    f"{charged.amount} {charged.currency}, "
                    f"{max(available, Decimal(0)).quantize(Decimal('0.01'))} "
                    f"{charged.currency} "
                    f"available"))
            serial = self._hold(payer, charged.amount)
            return Charge(payer, direction, rule, charged, True, serial)
        return Charge(payer, direction, rule, charged, prepaid)

    def _refuse(self, payer: str, submission: Any, error: Refused) -> None:
        self.refused += 1
        self.log.info("refused message from {payer} to {to}: {reason}",
                      payer=payer, to=submission.recipient, reason=str(error))
        raise error

    def accepted(self, raw: Any, message: Any, charge: Charge | None
                 ) -> None:
        """
        Inside the accept transaction: mark the message with its payer,
        debit a prepaid balance and write the record.

        @param raw: the ZODB root mapping of the transaction.
        @param message: the L{Message} being stored.
        @param charge: from L{authorize} (C{None}: nothing to do).
        """
        if charge is None:
            return
        billing = raw[KEY]
        r = charge.rate
        message.payer, message.rule = charge.payer, charge.rule
        message.charge_units = r.units if r is not None else 1
        if charge.hold:
            txn = raw._p_jar.transaction_manager.get()
            txn.addAfterCommitHook(self._release,
                                   (charge.payer, charge.hold))
        if charge.prepaid and charge.amount > 0:
            self._adjust(raw, charge.payer, -charge.amount)
            message.charged = charge.amount
        billing.records.add(Record(
            message.id, message.created, charge.direction, charge.payer,
            charge.rule, message.sender, message.recipient, message.parts,
            message.charge_units, r.tariff if r else None,
            r.prefix if r else "", r.price if r else Decimal(0),
            r.amount if r else Decimal(0), r.currency if r else "",
            charge.prepaid, message.state))

    def state_changed(self, raw: Any, message: Any, state: str) -> None:
        """
        Inside a state change's transaction: bring the record to the
        message's state; return a prepaid reservation on failed or
        expired.
        """
        if message.payer is None:
            return
        billing = raw[KEY]
        billing.records.set_state(message.payer, message.created,
                                  message.id, state)
        if state in ("failed", "expired") and message.charged:
            self._adjust(raw, message.payer, message.charged)
            message.charged = Decimal(0)

    def _adjust(self, raw: Any, payer: str, delta: Decimal) -> None:
        kind, _, name = payer.partition(":")
        app = raw["appliance"]
        if kind == "account":
            account = app.accounts.get(name)
            if account is not None:
                account.balance = account.balance + delta
                return
        elif kind == "carrier":
            carrier = app.carriers.get(name)
            terms = raw[KEY].terms("carriers", carrier) \
                if carrier is not None else None
            if terms is not None:
                terms.balance = terms.balance + delta
                return
        elif kind == "tenant":
            tenant = tenant_of(app, name)
            if tenant is not None:
                tenant.balance = tenant.balance + delta
                return
        self.log.warn("no balance of {payer} to adjust by {delta}",
                      payer=payer, delta=delta)
