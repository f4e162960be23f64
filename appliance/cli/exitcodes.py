"""Exit codes of the `logcaster` command, named in one place."""

OK = 0
FAILURE = 1          # the run failed (capture error, sink error, I/O)
USAGE = 2            # bad command line or bad configuration: nothing started
INPUT = 3            # an input file is missing or unreadable
ENVIRONMENT = 4      # this machine lacks something (privileges, hugepages, DPDK, headers)
INTERRUPTED = 130    # stopped by the user before finishing (SIGINT)
