"""Capture backends (Python side): DPDK poll-mode ports; AF_XDP and sockets later.

Each backend feeds the same C decoder, batches and rings; the supervisor
only sees queues with rings and counters.
"""
