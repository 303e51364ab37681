"""
sigsim: an HLR, an MSC/VLR and an ISUP switch on one M3UA ASP, for the
node's SIGTRAN tests and bench.  Every encoder and decoder it uses is
pycrate's (M3UA, SCCP, TCAP/MAP, ISUP, TS 23.040), none of the node's,
so the two sides do not share a bug.

    python -m tests.peers.sigsim --config sim.json

It connects to an STP (or straight to the node's M3UA listener) as an
ASP, registers a routing key for its point code if no routing context is
configured, answers BEAT, and takes commands on a loopback line
protocol (see L{tests.peers.sigsim.control}).
"""
