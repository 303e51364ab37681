# -*- test-case-name: tests.billing.test_charger -*-
"""
The charger: the messaging core's billing seam (L{ICharger}).

C{authorize} runs before anything is stored.  It decides who pays by the
authorization rules (L{appliance.billing.rules}: the first configured
rule that matches the message's incoming point and can charge it, else
the built-in attribution, the origin pays), rates the message with the
rule's tariff or the payer's own (a carrier's; an account's product's),
and, when the receiving account's product charges for receiving
(receiver pays), rates it a second time for that account with the
product's receiving tariff.  Each charge is checked on its own: a
prepaid payer whose balance, less what is held for messages authorized
but not yet stored, cannot cover it refuses the message (L{Refused}, with
a sentence the sender's user can read).  Protocols submit one message
per recipient, so a recipient without funds is refused alone.

C{accepted} and C{state_changed} run inside the batched transaction that
stores the message or changes its state: the first debits prepaid
balances (the reservations) and writes one record per payer, the second
brings the records to the message's state and, when a prepaid message
fails or expires, returns the reservations.  Both only touch the
database, so a batch that is re-run or aborted leaves nothing behind; the
in-memory holds are released by the transaction's after-commit hook (and
expire anyway).  A prepaid account whose debit takes it below its
product's threshold is marked in the same transaction and, once that
commits, gets one balance-low message through the core.

The rules, tariffs, carriers' and products' terms are an immutable
snapshot (L{Book}) rebuilt after each configuration commit; balances are
state and are read from the database when a payer is prepaid.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, NamedTuple

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from appliance.billing.interfaces import ICharger
from appliance.billing.model import (
    KEY, LOW_SENDER, LOW_TEXT, billing_of)
from appliance.billing.rating import NoPrice, Rate, RatingTariff, rate
from appliance.billing.records import AMOUNT, PREPAID, STATE, Record
from appliance.billing.rules import Point, Rule, RuleBook, point_of
from appliance.messaging.vocabulary import Refused, Submission
from appliance.model.numbers import normalize_e164

_CENT = Decimal("0.01")
#: Record direction by who a rule charges.
_DIRECTION = {"carrier": "terminating", "connection": "terminating",
              "sender": "originating", "recipient": "receiving"}


class NoTariff(Refused):
    """The payer's tariff has no price for the destination (SMPP:
    C{ESME_RINVDSTADR}; SIP 402)."""

    kind = "destination"


class NoFunds(Refused):
    """A prepaid payer's balance does not cover the message (SMPP:
    C{ESME_RSUBMITFAIL}; SIP 402)."""


@dataclass(frozen=True)
class Low:
    """
    A product's balance-low notification.

    @ivar threshold: below this balance, tell the account once.
    @ivar text: the template (fields of L{appliance.billing.model.LOW_FIELDS}).
    @ivar sender: the sender address of the notification.
    """
    threshold: Decimal
    text: str = LOW_TEXT
    sender: str = LOW_SENDER


@dataclass(frozen=True)
class ProductBilling:
    """
    A product's billing terms, snapshotted.

    @ivar tariff: rates what its accounts send.
    @ivar receiver: rates what its accounts receive (receiver pays).
    @ivar low: its balance-low notification, if any.
    """
    tariff: str | None = None
    receiver: str | None = None
    low: Low | None = None


@dataclass(frozen=True)
class Book:
    """
    Everything C{authorize} reads that only configuration changes.

    @ivar rules: the authorization rules.
    @ivar tariffs: tariff name to L{RatingTariff}.
    @ivar carriers: carrier name to C{(tariff, prepaid)}.
    @ivar products: product name to L{ProductBilling}.
    """
    rules: RuleBook = RuleBook()
    tariffs: dict[str, RatingTariff] = field(default_factory=dict)
    carriers: dict[str, tuple[str | None, bool]] = field(
        default_factory=dict)
    products: dict[str, ProductBilling] = field(default_factory=dict)


def rule_book(root: Any, log: Any = None) -> RuleBook:
    """
    Snapshot the authorization rules.

    @param root: the C{ApplianceRoot}.
    @param log: where to report a stored rule that no longer builds.
    @return: the L{RuleBook}.
    """
    rules = []
    for stored in billing_of(root).ordered_rules():
        try:
            rule = stored.snapshot()
        except ValueError as e:
            if log is not None:
                log.warn("authorization rule {name} ignored: {why}",
                         name=stored.name, why=str(e))
            continue
        if rule is not None:
            rules.append(rule)
    return RuleBook.of(rules)


def build_book(root: Any, log: Any = None) -> Book:
    """
    Snapshot the billing configuration.

    @param root: the C{ApplianceRoot}.
    @param log: where to report a stored rule that no longer builds.
    @return: the L{Book}.
    """
    billing = billing_of(root)
    carriers = {}
    for carrier in root.carriers.values():
        terms = billing.terms("carriers", carrier)
        carriers[carrier.name] = (carrier.tariff,
                                  bool(terms is not None and terms.prepaid))
    products = {}
    for product in root.products.values():
        terms = billing.terms("products", product)
        low = None
        if terms is not None and terms.low_threshold is not None:
            low = Low(terms.low_threshold, terms.low_text or LOW_TEXT,
                      terms.low_sender or LOW_SENDER)
        products[product.name] = ProductBilling(
            billing.product_tariff(product, root.tariffs),
            billing.receiver_tariff(product, root.tariffs), low)
    return Book(rule_book(root, log),
                {t.name: billing.rating_tariff(t)
                 for t in root.tariffs.values()},
                carriers, products)


class Charge(NamedTuple):
    """
    One payer's charge for one message.

    @ivar payer: C{kind:name}.
    @ivar direction: C{terminating}, C{originating} or C{receiving}.
    @ivar rule: the rule that made it (recorded with it).
    @ivar rate: the rate, or C{None} when the payer has no tariff.
    @ivar prepaid: whether the amount is reserved from a balance.
    @ivar hold: the in-memory hold's serial (0: none).
    @ivar account: the paying account's username (balance-low), if an
        account pays.
    @ivar low: that account's product's balance-low notification.
    @ivar balance: the prepaid balance read when it was authorized.
    """
    payer: str
    direction: str
    rule: str
    rate: Rate | None
    prepaid: bool = False
    hold: int = 0
    account: str | None = None
    low: Low | None = None
    balance: Decimal = Decimal(0)

    @property
    def amount(self) -> Decimal:
        """The amount to charge."""
        return self.rate.amount if self.rate is not None else Decimal(0)


class Authorization(NamedTuple):
    """
    What C{authorize} decided for one message.

    @ivar rule: the name of the authorization rule that decided.
    @ivar payer: the charge of the payer that rule names (C{None}: the
        rule charges nobody).
    @ivar receiver: the receiving account's charge, when its product
        charges for receiving (and the rule did not name it already).
    """
    rule: str
    payer: Charge | None = None
    receiver: Charge | None = None

    @property
    def charges(self) -> tuple[Charge, ...]:
        """Every charge, the rule's payer first."""
        return tuple(c for c in (self.payer, self.receiver) if c is not None)

    def price_of(self, payer: str) -> tuple[Decimal, str] | None:
        """
        What this authorization charges C{payer}, as rated once here (the
        record and any debit carry the same rate).

        @param payer: C{kind:name}, e.g. C{tenant:acme}.
        @return: C{(amount, currency)}, or C{None} when it charges that
            payer nothing rated (another payer, or no tariff).
        """
        for charge in (self.payer, self.receiver):
            if charge is not None and charge.payer == payer and \
                    charge.rate is not None:
                return charge.rate.amount, charge.rate.currency
        return None


class _AccountPlan(NamedTuple):
    """An account's billing configuration, snapshotted (L{Charger._plan}).

    @ivar product: its product's L{ProductBilling}, or C{None}.
    @ivar prepaid: whether it pays from its balance.
    """
    product: ProductBilling | None
    prepaid: bool


class _Payer(NamedTuple):
    key: str
    direction: str
    tariff: str | None
    prepaid: bool = False
    balance: Decimal = Decimal(0)
    account: str | None = None
    low: Low | None = None


@implementer(ICharger)
class Charger:
    """
    Rates, reserves and records (see the module docstring).

    @ivar book: the configuration snapshot, rebuilt after each
        configuration commit.
    @ivar submit: how balance-low messages are submitted (the core's
        C{submit}), or C{None}: they are logged, not sent.
    @ivar notified: balance-low messages submitted since start.
    """

    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime,
                 hold_timeout: float = 300.0,
                 submit: Callable[[Submission], Any] | None = None,
                 tenants: Callable[[Any, str], Any] | None = None) -> None:
        """
        @param storage: the L{IStorage} (its C{root()} is read on the
            reactor thread).
        @param clock: the reactor's time.
        @param hold_timeout: seconds after which a hold whose transaction
            never committed is forgotten.
        @param submit: see L{submit}.
        @param tenants: the payer lookup of API tenants, C{tenants(app_root,
            name)} giving an object with C{name}, C{tariff}, C{prepaid} and
            a writable C{balance}, or C{None}; handed in by the wiring (the
            HTTP domain owns tenants). Without it no tenant is known.
        """
        self.storage = storage
        self._tenant_of = tenants if tenants is not None \
            else (lambda app_root, name: None)
        self.clock = clock
        self.hold_timeout = hold_timeout
        self.submit = submit
        self.book = Book()
        self._accounts: dict[str, _AccountPlan] = {}
        self._holds: dict[str, _Holds] = {}
        self._serial = itertools.count(1)
        self.refused = 0
        self.notified = 0

    # -- configuration ---------------------------------------------------

    def start(self) -> None:
        """Build the snapshot and rebuild it after each commit."""
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
        """Snapshot the rules, tariffs and terms; forget the accounts'
        (each is read again at its next message)."""
        self.book = build_book(self.storage.root(), self.log)
        self._accounts = {}

    def _plan(self, username: str, root: Any) -> _AccountPlan | None:
        """
        An account's billing configuration as of the snapshot: read from
        the database at its first message after a configuration commit,
        then from memory (the hot path touches no persistent object for
        it; a prepaid account's balance is state and is still read).

        @return: its L{_AccountPlan}, or C{None} for no such account (not
            remembered: unknown names must not fill memory).
        """
        plan = self._accounts.get(username)
        if plan is not None:
            return plan
        account = root.accounts.get(username)
        if account is None:
            return None
        book = self.book
        product = book.products.get(account.product) \
            if account.product else None
        terms = billing_of(root).terms("accounts", account)
        plan = self._accounts[username] = _AccountPlan(
            product, bool(terms is not None and terms.prepaid))
        return plan

    @property
    def tariffs(self) -> dict[str, RatingTariff]:
        """Tariff name to L{RatingTariff} (from the snapshot)."""
        return self.book.tariffs

    def decide(self, point: Point) -> Rule:
        """
        @return: the authorization rule that decides who pays for a
            message from C{point} (for C{test route} too).
        """
        return self.book.rules.decide(point)

    # -- holds ---------------------------------------------------------

    def held(self, payer: str) -> Decimal:
        """
        @param payer: C{kind:name}.
        @return: the amount authorized for it and not yet stored (holds
            older than the timeout are dropped first).
        """
        holds = self._holds.get(payer)
        if holds is None:
            return Decimal(0)
        holds.expire(self.clock.seconds() - self.hold_timeout)
        if not holds.amounts:
            del self._holds[payer]
            return Decimal(0)
        return holds.total

    def _hold(self, payer: str, amount: Decimal) -> int:
        serial = next(self._serial)
        holds = self._holds.get(payer)
        if holds is None:
            holds = self._holds[payer] = _Holds()
        holds.add(serial, amount, self.clock.seconds())
        return serial

    def _release(self, status: bool, payer: str, serial: int) -> None:
        holds = self._holds.get(payer)
        if holds is not None:
            holds.remove(serial)
            if not holds.amounts:
                del self._holds[payer]

    # -- the seam --------------------------------------------------------

    def authorize(self, submission: Any, transport: str,
                  account: str | None, route: str, now: float
                  ) -> Authorization:
        """
        Decide who pays, rate, and check each payer can pay.

        @param submission: the L{Submission}.
        @param transport: where it goes (C{sip}, C{smpp}).
        @param account: the receiving account, if local.
        @param route: the route name.
        @param now: the acceptance time (the price in force then applies).
        @return: the L{Authorization}.
        @raise Refused: a tariff has no price for the destination, or a
            prepaid payer's balance cannot cover its charge; nothing is
            held then.
        """
        book = self.book
        point = point_of(submission, account)
        rule = book.rules.decide(point)
        root = self.storage.root()
        number = normalize_e164(submission.recipient)
        payer = self._payer(rule, point, root, book)
        first = None if payer is None else \
            self._rate(payer, rule.name, submission, number, now)
        second = None
        if account is not None and point.origin_kind != "node" and (
                payer is None or payer.key != f"account:{account}") and \
                self._receiver_pays(account, root, book):
            receiver = self._account(account, "receiving", None, root, book)
            second = self._rate(receiver, "receiver-pays", submission,
                                number, now)
        # Check every charge before holding any, so a refusal holds nothing.
        prepaid = [c for c in (first, second) if c is not None
                   and c.prepaid and c.amount > 0]
        for charge in prepaid:
            available = charge.balance - self.held(charge.payer)
            if charge.amount > available:
                self._refuse(charge.payer, submission,
                             self._no_funds(charge, number, available))
        if prepaid:
            first = self._held_charge(first)
            second = self._held_charge(second)
        return Authorization(rule.name, first, second)

    def _held_charge(self, charge: Charge | None) -> Charge | None:
        """The charge with its hold taken, if it reserves money."""
        if charge is None or not charge.prepaid or charge.amount <= 0:
            return charge
        # Built whole: NamedTuple._replace costs several times as much.
        return Charge(charge.payer, charge.direction, charge.rule,
                      charge.rate, True,
                      self._hold(charge.payer, charge.amount),
                      charge.account, charge.low, charge.balance)

    def _receiver_pays(self, username: str, root: Any, book: Book) -> bool:
        """Whether a local recipient's product charges for receiving."""
        plan = self._plan(username, root)
        product = plan.product if plan is not None else None
        return product is not None and product.receiver is not None

    @staticmethod
    def _no_funds(charge: Charge, number: str, available: Decimal) -> NoFunds:
        if charge.direction == "receiving":
            # Seed 001: tell the sender the recipient cannot receive, not
            # the recipient's balance.
            return NoFunds(f"Recipient +{number} cannot receive messages "
                           f"now: insufficient balance")
        return NoFunds(
            f"Insufficient balance: the message costs {charge.amount} "
            f"{charge.rate.currency}, "
            f"{max(available, Decimal(0)).quantize(_CENT)} "
            f"{charge.rate.currency} available")

    def _payer(self, rule: Rule, point: Point, root: Any, book: Book
               ) -> _Payer | None:
        """The payer a rule names for a message from C{point}."""
        charge = rule.charge
        if charge == "nobody":
            return None
        direction = _DIRECTION[charge]
        if charge == "carrier" and point.origin_kind == "map":
            # An MSC by its global title (mo-forwardSM): no terms yet.
            return _Payer(f"map:{point.origin}", direction, rule.tariff)
        if charge == "carrier":
            tariff, prepaid = book.carriers.get(point.origin, (None, False))
            balance = Decimal(0)
            if prepaid:
                carrier = root.carriers.get(point.origin)
                terms = billing_of(root).terms("carriers", carrier) \
                    if carrier is not None else None
                balance = terms.balance if terms is not None else balance
            return _Payer(f"carrier:{point.origin}", direction,
                          rule.tariff or tariff, prepaid, balance)
        if charge == "connection":
            return _Payer(f"connection:{point.origin}", direction,
                          rule.tariff)
        if charge == "sender" and point.origin_kind == "tenant":
            tenant = self._tenant_of(root, point.origin)
            if tenant is None:
                return _Payer(f"tenant:{point.origin}", direction,
                              rule.tariff)
            return _Payer(f"tenant:{tenant.name}", direction,
                          rule.tariff or tenant.tariff, tenant.prepaid,
                          tenant.balance if tenant.prepaid else Decimal(0))
        if charge == "sender":
            return self._account(point.origin, direction, rule.tariff, root,
                                 book)
        return self._account(point.recipient, direction, rule.tariff, root,
                             book)

    def _account(self, username: str, direction: str, tariff: str | None,
                 root: Any, book: Book) -> _Payer:
        """An account as a payer: the rule's tariff, else its product's
        (for receiving: the product's receiving tariff)."""
        key = f"account:{username}"
        plan = self._plan(username, root)
        if plan is None:
            return _Payer(key, direction, tariff)
        product, prepaid = plan
        if tariff is None and product is not None:
            tariff = product.receiver if direction == "receiving" \
                else product.tariff
        if not prepaid:
            return _Payer(key, direction, tariff, False, Decimal(0),
                          username)
        # The balance is state: read it (the accept re-checks it in its
        # own transaction).
        account = root.accounts.get(username)
        balance = account.balance if account is not None else Decimal(0)
        return _Payer(key, direction, tariff, True, balance, username,
                      product.low if product is not None else None)

    def _rate(self, payer: _Payer, rule: str, submission: Any, number: str,
              now: float) -> Charge:
        charged = None
        if payer.tariff is not None:
            tariff = self.book.tariffs.get(payer.tariff)
            if tariff is None:      # created in this very turn
                self.rebuild()
                tariff = self.book.tariffs.get(payer.tariff)
            if tariff is None:
                self._refuse(payer.key, submission, NoTariff(
                    f"No tariff {payer.tariff} to rate +{number}"))
            try:
                charged = rate(tariff, number, submission.parts, now)
            except NoPrice as e:
                self._refuse(payer.key, submission, NoTariff(str(e)))
        return Charge(payer.key, payer.direction, rule, charged,
                      payer.prepaid, 0, payer.account, payer.low,
                      payer.balance)

    def _refuse(self, payer: str, submission: Any, error: Refused) -> None:
        self.refused += 1
        self.log.info("refused message from {payer} to {to}: {reason}",
                      payer=payer, to=submission.recipient, reason=str(error))
        raise error

    def accepted(self, raw: Any, message: Any,
                 auth: Authorization | None) -> None:
        """
        Inside the accept transaction: mark the message with its payer
        and rule, debit prepaid balances and write one record per payer.

        @param raw: the ZODB root mapping of the transaction.
        @param message: the L{Message} being stored.
        @param auth: from L{authorize} (C{None}: nothing to do).
        """
        if auth is None:
            return
        self._still_covered(raw, message, auth)
        billing = raw[KEY]
        message.rule = auth.rule
        txn = None
        for charge in auth.charges:
            r = charge.rate
            if charge is auth.payer:
                message.payer = charge.payer
                message.charge_units = r.units if r is not None else 1
            if charge.hold:
                txn = txn or raw._p_jar.transaction_manager.get()
                txn.addAfterCommitHook(self._release,
                                       (charge.payer, charge.hold))
            if charge.prepaid and charge.amount > 0:
                balance = self._adjust(raw, charge.payer, -charge.amount)
                if charge is auth.payer:
                    message.charged = charge.amount
                if charge.low is not None and balance is not None:
                    txn = txn or raw._p_jar.transaction_manager.get()
                    self._check_low(raw, txn, charge, balance)
            billing.records.add(Record(
                message.id, message.created, charge.direction, charge.payer,
                charge.rule, message.sender, message.recipient,
                message.parts, r.units if r is not None else 1,
                r.tariff if r else None, r.prefix if r else "",
                r.price if r else Decimal(0), r.amount if r else Decimal(0),
                r.currency if r else "", charge.prepaid, message.state))

    def _still_covered(self, raw: Any, message: Any,
                       auth: Authorization) -> None:
        """
        Check again, on the balances this transaction reads, that each
        prepaid charge is covered.  The holds taken at C{authorize} are
        this node's own: another node on the same database may have spent
        the balance since.  Both nodes' debits write the payer's object,
        so the database makes the later commit conflict, and the retry
        runs this on the balance the first one left.

        @raise NoFunds: a balance no longer covers its charge (the holds
            of this message are released: nothing is reserved).
        """
        for charge in auth.charges:
            if not charge.prepaid or charge.amount <= 0:
                continue
            balance = self._balance(raw, charge.payer)
            if balance is None or balance >= charge.amount:
                continue
            for held in auth.charges:
                if held.hold:
                    self._release(False, held.payer, held.hold)
            self._refuse(charge.payer, message, self._no_funds(
                charge, message.recipient, balance))

    def _balance(self, raw: Any, payer: str) -> Decimal | None:
        """@return: a payer's balance as this transaction reads it, or
        C{None} when it has none."""
        kind, _, name = payer.partition(":")
        app = raw["appliance"]
        if kind == "account":
            account = app.accounts.get(name)
            return account.balance if account is not None else None
        if kind == "carrier":
            carrier = app.carriers.get(name)
            terms = raw[KEY].terms("carriers", carrier) \
                if carrier is not None else None
            return terms.balance if terms is not None else None
        if kind == "tenant":
            tenant = self._tenant_of(app, name)
            return tenant.balance if tenant is not None else None
        return None

    def state_changed(self, raw: Any, message: Any, state: str) -> None:
        """
        Inside a state change's transaction: bring the message's records
        to its state; return prepaid reservations on failed or expired.
        """
        payer = message.payer
        receiver = f"account:{message.account}" if message.account else None
        if payer is None and receiver is None:
            return
        records = raw[KEY].records
        final_loss = state in ("failed", "expired")
        if payer is not None:
            records.restate(payer, message.created, message.id, state)
            if final_loss and message.charged:
                self._adjust(raw, payer, message.charged)
                message.charged = Decimal(0)
        if receiver is None or receiver == payer:
            return
        # The receiver's record, if it pays to receive: its fields before
        # the change (records.restate).
        old = records.restate(receiver, message.created, message.id, state)
        if old is None or old[STATE] == state:
            return
        if final_loss and old[PREPAID] and \
                old[STATE] not in ("failed", "expired"):
            amount = Decimal(old[AMOUNT])
            if amount > 0:
                self._adjust(raw, receiver, amount)

    def _adjust(self, raw: Any, payer: str, delta: Decimal
                ) -> Decimal | None:
        """
        Change a payer's balance (a credit may re-arm its balance-low
        message).

        @return: the new balance, or C{None} when the payer has none.
        """
        kind, _, name = payer.partition(":")
        app = raw["appliance"]
        if kind == "account":
            account = app.accounts.get(name)
            if account is not None:
                account.balance = account.balance + delta
                if delta > 0:
                    raw[KEY].rearm_low(account, app.products)
                return account.balance
        elif kind == "carrier":
            carrier = app.carriers.get(name)
            terms = raw[KEY].terms("carriers", carrier) \
                if carrier is not None else None
            if terms is not None:
                terms.balance = terms.balance + delta
                return terms.balance
        elif kind == "tenant":
            tenant = self._tenant_of(app, name)
            if tenant is not None:
                tenant.balance = tenant.balance + delta
                return tenant.balance
        self.log.warn("no balance of {payer} to adjust by {delta}",
                      payer=payer, delta=delta)
        return None

    # -- balance low -----------------------------------------------------

    def _check_low(self, raw: Any, txn: Any, charge: Charge,
                   balance: Decimal) -> None:
        """After a debit: mark an account that fell below its threshold
        and send it one notification once the transaction commits."""
        low = charge.low
        if balance >= low.threshold:
            return
        app = raw["appliance"]
        account = app.accounts.get(charge.account)
        terms = raw[KEY].terms("accounts", account) \
            if account is not None else None
        if terms is None or terms.low_notified:
            return
        terms.low_notified = True
        currency = charge.rate.currency if charge.rate else ""
        text = low.text.format(account=account.username,
                               balance=balance.quantize(_CENT),
                               currency=currency,
                               threshold=low.threshold)
        number = account.dids[0] if account.dids else account.username
        txn.addAfterCommitHook(self._low_committed,
                               (account.username, number, low.sender, text))

    def _low_committed(self, status: bool, username: str, number: str,
                       sender: str, text: str) -> None:
        if status:
            self.clock.callLater(0, self.notify_low, username, number,
                                 sender, text)

    def notify_low(self, username: str, number: str, sender: str,
                   text: str) -> defer.Deferred | None:
        """
        Submit a balance-low message to an account through the core, as
        the node (origin kind C{node}: no rule charges it and no product
        charges for receiving it).

        @return: the core's Deferred, or C{None} when nothing submits.
        """
        if self.submit is None:
            self.log.warn("balance of account {username} is low; no core "
                          "to tell it", username=username)
            return None
        self.log.info("balance of account {username} is low: telling it",
                      username=username)
        self.notified += 1
        d = defer.maybeDeferred(self.submit, Submission(
            "node", "balance-low", sender, number, text))
        d.addErrback(lambda f: self.log.failure(
            "balance-low message to {username} not accepted", f,
            username=username))
        return d


class _Holds:
    """
    One payer's holds: amounts by serial, their running total, and the
    serials in the order they were taken (the clock only moves forward),
    so expiring and summing cost what was added, not a scan per message.
    """

    __slots__ = ("amounts", "order", "total")

    def __init__(self) -> None:
        self.amounts: dict[int, Decimal] = {}
        self.order: deque[tuple[int, float]] = deque()
        self.total = Decimal(0)

    def add(self, serial: int, amount: Decimal, at: float) -> None:
        """Hold C{amount} under C{serial} from time C{at}."""
        self.amounts[serial] = amount
        self.order.append((serial, at))
        self.total += amount

    def remove(self, serial: int) -> None:
        """Release a hold (again: nothing)."""
        amount = self.amounts.pop(serial, None)
        if amount is not None:
            self.total -= amount
        order = self.order
        while order and order[0][0] not in self.amounts:
            order.popleft()

    def expire(self, before: float) -> None:
        """Drop the holds taken before C{before}."""
        order = self.order
        while order and (order[0][1] < before
                         or order[0][0] not in self.amounts):
            serial, _ = order.popleft()
            amount = self.amounts.pop(serial, None)
            if amount is not None:
                self.total -= amount

