"""Capture backends (Python side): DPDK poll-mode ports (dpdk.py), AF_XDP
sockets fed by an XDP program (afxdp.py), kernel UDP sockets (sockets.py);
select.py picks one and says why.

Each backend feeds the same C decoder, batches and rings; the supervisor
only sees queues with rings and counters (base.py).
"""
