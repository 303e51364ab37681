"""
The node's alarms (seed 003, "multilevel alarms"): a table of active
alarms with a bounded history, the conditions that raise and clear them,
SNMP traps to the NOC for each change, and the node-wide settings the
shell keeps for them (log levels, thresholds, SNMP managers).
"""
