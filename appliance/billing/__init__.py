"""
Billing and charging: tariffs and rating, per-message records,
settlement and volume fees (pure), prepaid reservations (the charger the
messaging core calls), and the billing service.
"""
