"""Exit codes of the `logcaster` command, named in one place, and the one
mapping from an error's category (appliance/errors.py) to its code."""

from appliance import errors

OK = 0
FAILURE = 1          # the run failed (capture error, sink error, I/O)
USAGE = 2            # bad command line or bad configuration: nothing started
INPUT = 3            # an input file is missing or unreadable
ENVIRONMENT = 4      # this machine lacks something (privileges, hugepages, DPDK, headers)
INTERRUPTED = 130    # stopped by the user before finishing (SIGINT)

BY_CATEGORY = {
    errors.CONFIG: USAGE,
    errors.INPUT: INPUT,
    errors.ENVIRONMENT: ENVIRONMENT,
    errors.FAILURE: FAILURE,
}


def for_error(exc: errors.LogCasterError) -> int:
    return BY_CATEGORY[exc.category]
