"""
Interfaces of the model domain: the operational objects in the database.

Settings shown as attributes are validated on assignment (raising
L{appliance.model.errors.ModelError}) and return to their default with
C{del obj.<name>} or C{obj.reset(name)}, unless marked "set through the
root", in which case the named L{IApplianceRoot} method changes them.
"""
from zope.interface import Attribute, Interface


class IConfigurable(Interface):
    """
    A named object with resettable settings.
    """

    name = Attribute("The name (its key in the root's container).")

    def settings():
        """
        @return: the names of the settings, in declaration order.
        """

    def reset(name):
        """
        Return a setting to its default.

        @raise ModelError: for an unknown or root-managed setting.
        """

    def changed_settings():
        """
        @return: an iterator of C{(name, value)} for settings that differ
            from their default (for C{show running-config}).
        """


class IProduct(IConfigurable):
    """
    A sellable bundle (e.g. C{Call & Chat}).
    """

    messaging = Attribute("bool: accounts with this product receive SMS.")


class ICustomer(IConfigurable):
    """
    A customer owning accounts.
    """

    accounts = Attribute("OOBTree: username to IAccount.")


class IAccount(IConfigurable):
    """
    A SIP account (an app user, whose username is usually the DID).
    """

    username = Attribute("str: the SIP username.")
    customer = Attribute("str: the owning customer's name.")
    realm = Attribute("str or None: the realm the HA1 values were made for.")
    ha1_md5 = Attribute("str or None: digest HA1 for MD5.")
    ha1_sha256 = Attribute("str or None: digest HA1 for SHA-256.")
    product = Attribute("str or None: product name (set through the root).")
    dids = Attribute("tuple of E.164 str, sorted (set through the root).")
    balance = Attribute("Decimal: prepaid balance.")
    enabled = Attribute("bool: whether it may register and receive.")

    def set_password(password, realm):
        """
        Store the HA1 values of a password (never the password).
        """

    def clear_password():
        """
        Remove the password.
        """

    def set_ha1(realm, ha1_md5, ha1_sha256):
        """
        Restore HA1 values written by C{show running-config}.
        """

    def check_ha1(algorithm):
        """
        @return: the hex HA1 for C{MD5} or C{SHA-256}, or None.
        """


class ICarrier(IConfigurable):
    """
    A carrier binding to us over SMPP.
    """

    system_id = Attribute("str or None: bind system_id (set through the root).")
    allowed_networks = Attribute("tuple of CIDR str; empty allows any source.")
    max_binds = Attribute("int: concurrent binds allowed.")
    throughput = Attribute("int: submit_sm per second, 0 = unlimited.")
    tariff = Attribute("str or None: tariff name (set through the root).")
    enabled = Attribute("bool: whether binds are accepted.")

    def set_password(password):
        """
        Set the bind password (at most 8 characters, stored hashed).
        """

    def clear_password():
        """
        Remove the password (every bind is refused).
        """

    def set_password_hash(stored):
        """
        Restore a password hash written by C{show running-config}.
        """

    def check_password(password):
        """
        @return: whether the bind password matches.
        """

    def allow_ip(net):
        """
        Add a network binds may come from.
        """

    def disallow_ip(net):
        """
        Remove an allowed network.
        """

    def source_allowed(ip):
        """
        @return: whether a bind may come from C{ip}.
        """


class IConnection(IConfigurable):
    """
    An outbound SMPP connection to a vendor SMSC.
    """

    host = Attribute("str or None: SMSC host.")
    port = Attribute("int: SMSC port (2775).")
    system_id = Attribute("str or None: our system_id.")
    password = Attribute("str or None: our password, clear text.")
    bind = Attribute("str: transmitter or transceiver.")
    binds = Attribute("int: parallel binds.")
    window = Attribute("int: outstanding requests per bind.")
    throughput = Attribute("int: submit_sm per second, 0 = unlimited.")
    tls = Attribute("bool: use TLS.")
    shutdown = Attribute("bool: administratively down.")


class IServicePolicy(IConfigurable):
    """
    One routing rule.
    """

    recipient_pattern = Attribute("str: recipient pattern (digits, %, _).")
    sender_pattern = Attribute("str or None: sender pattern; None = any.")
    origin = Attribute("str or None: app, carrier or connection; None = any.")
    transport = Attribute("str: sip or smpp.")
    connections = Attribute("tuple of connection names (set through the root).")


class ITariff(IConfigurable):
    """
    Prices by destination prefix.
    """

    currency = Attribute("str: ISO 4217 code.")
    prices = Attribute("OOBTree: prefix to Decimal.")

    def set_price(prefix, price):
        """
        Set a prefix's price (Decimal, >= 0).
        """

    def remove_price(prefix):
        """
        Remove a prefix's price.
        """

    def lookup(number):
        """
        @return: C{(prefix, price)} for the longest priced prefix, or None.
        """

    def snapshot():
        """
        @return: an immutable copy with the same C{lookup}.
        """


class IOperator(IConfigurable):
    """
    A shell operator.
    """

    role = Attribute("str: view or admin.")
    ssh_keys = Attribute("tuple of OpenSSH public key lines.")
    password_hash = Attribute("str or None: the salted password hash.")

    def add_ssh_key(line):
        """
        Add a public key.
        """

    def remove_ssh_key(key):
        """
        Remove a key, given by line or SHA256 fingerprint.
        """

    def public_keys():
        """
        @return: the parsed C{twisted.conch.ssh.keys.Key} objects.
        """

    def set_password(password):
        """
        Set the password, or disable password login with None.
        """

    def set_password_hash(stored):
        """
        Restore a password hash written by C{show running-config}.
        """

    def check_password(password):
        """
        @return: whether the password matches.
        """


class IApplianceRoot(Interface):
    """
    The root of the operational data; multi-object changes go through it.
    """

    products = Attribute("OOBTree: name to IProduct.")
    customers = Attribute("OOBTree: name to ICustomer.")
    accounts = Attribute("OOBTree: username to IAccount (global).")
    dids = Attribute("OOBTree: E.164 digits to username.")
    carriers = Attribute("OOBTree: name to ICarrier.")
    carriers_by_system_id = Attribute("OOBTree: system_id to ICarrier.")
    connections = Attribute("OOBTree: name to IConnection.")
    policies = Attribute("OOBTree: name to IServicePolicy.")
    policy_order = Attribute("tuple of policy names, first match first.")
    tariffs = Attribute("OOBTree: name to ITariff.")
    operators = Attribute("OOBTree: name to IOperator.")
    numbering = Attribute("The node's numbering plan (appliance.model."
                          "numbering.NumberingPlan): how numbers as "
                          "received become E.164.")

    def add_product(name):
        """@return: the new product."""

    def remove_product(name):
        """Refused while an account uses it."""

    def add_customer(name):
        """@return: the new customer."""

    def remove_customer(name):
        """Refused while it has accounts."""

    def add_account(customer, username):
        """@return: the new account; usernames are unique globally."""

    def remove_account(username):
        """Remove an account and free its DIDs."""

    def set_account_product(username, product):
        """Set (or with None reset) an account's product."""

    def add_did(username, number):
        """@return: the normalized DID, now the account's."""

    def remove_did(username, number):
        """Take a DID from an account."""

    def account_for_did(number):
        """@return: the account owning a DID, or None."""

    def add_carrier(name):
        """@return: the new carrier."""

    def remove_carrier(name):
        """Remove a carrier and free its system_id."""

    def set_carrier_system_id(name, system_id):
        """Set (unique) or with None reset a carrier's system_id."""

    def carrier_by_system_id(system_id):
        """@return: the carrier with that system_id, or None."""

    def set_carrier_tariff(name, tariff):
        """Set (or with None reset) a carrier's tariff."""

    def add_tariff(name):
        """@return: the new tariff."""

    def remove_tariff(name):
        """Refused while a carrier uses it."""

    def add_connection(name):
        """@return: the new connection."""

    def remove_connection(name):
        """Refused while a policy uses it."""

    def add_policy(name):
        """@return: the new policy, last in the order."""

    def remove_policy(name):
        """Remove a policy."""

    def move_policy(name, position):
        """Move a policy to a 1-based position."""

    def set_policy_connections(name, names):
        """Set a policy's connections (existing ones, in priority order)."""

    def ordered_policies():
        """@return: the policies in routing order."""

    def add_operator(name):
        """@return: the new operator."""

    def remove_operator(name):
        """Remove an operator."""
