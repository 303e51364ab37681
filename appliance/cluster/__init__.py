"""Several nodes on one database: registry, heartbeats, message leases,
takeover and hand-over (see L{appliance.cluster.service})."""
