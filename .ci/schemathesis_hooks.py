"""Hooks for the schemathesis run of .ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

One hook: `filter_failure`, which drops exactly the failures that no OpenAPI document can
avoid, each named below with the reason. Every other failure fails the run.
"""

import json
import os
import re

import schemathesis

# A start whose body the document allows can still be the caller's mistake in ways that
# depend on this machine, which no schema can state: the workdir must be an existing directory
# the server may enter, and an argv program must be found and executable (the CI server's
# PATH is an empty directory, so every argv program named without a path is not found). The
# contract answers these 400 with exactly these sentences ("Spawn failures that are the
# caller's fault are 400"); anything else refused with 400 is still a failure.
START_CALLER_FAULTS = re.compile(
    r'(Program ".*" not found\.'
    r'|Program ".*" cannot be executed\.'
    r'|Working directory ".*" does not exist\.'
    r'|Working directory ".*" cannot be entered\.'
    r"|The command, its arguments and environment are too large for the system\.)",
    re.DOTALL,
)

# A start's `limits` need the cgroup controller on this host (the contract's 400 `Limit "..."
# is not available on this host.` otherwise): which controllers the server's cgroup has is a
# fact of the machine, not of the document. On hosts where memory, pids and cpu are bound to
# cgroup v1 (this CI machine), every schema-valid `limits` is refused with exactly this.
LIMIT_UNAVAILABLE = re.compile(r'Limit "(memory_bytes|pids|cpu_percent)" is not available on this host\.')
START_OPERATIONS = {"POST /api/v0/processes/start", "POST /api/v0/processes/start-tracked"}

# A regular expression parameter (`until` on output, `pattern` on log search) must compile
# under the Rust `regex` crate's syntax and fit in 1024 bytes; a JSON Schema can state
# neither (its own `format: regex` is ECMA 262, and its lengths count characters, not bytes).
# The contract answers 400 "Invalid pattern." with the compiler's message as detail; exactly
# that answer is dropped, on exactly these operations.
PATTERN_OPERATIONS = {
    "GET /api/v0/processes/{id}/output",
    "GET /api/v0/processes/{id}/log/search",
}

# JSON Schema counts 1.0 as an integer; the server's JSON reader (serde) does not, and answers
# 400 "Request body must be valid JSON." with this detail. The document cannot tell the two
# spellings apart, so a schema-valid body that spells an integer field as an integral float
# (e.g. {"signal":"kill","grace_ms":1.0}) is refused. Reported as a finding of issue 10.
INTEGRAL_FLOAT_DETAIL = re.compile(r"invalid type: floating point `-?[0-9]+(\.0+)?(e[+-]?[0-9]+)?`")


# Tracked processes (coder's protocol): a tracked start, cancel or output read must name the
# server's agent instance, a random id chosen when it starts, and a start must carry the
# SHA-256 of its own body as Go writes it. No document can state either, so a schema-valid
# request is refused with coder's tracked errors: 400 (invalid identity, e.g. a digest that is
# not the body's), 409 (another instance), 410 (a deadline already passed), 429 (no more
# identities). Exactly these answers are dropped, on exactly these operations (and the output
# route's 400 for a `wait_ms` it reads only with `wait=true`).
TRACKED_FAILED = "Tracked process request failed."
TRACKED_DETAILS = {
    400: "invalid tracked process identity",
    409: "tracked process identity conflicts",
    410: "tracked process history expired",
    429: "tracked process identity capacity reached",
}
TRACKED_OPERATIONS = {
    "POST /api/v0/processes/start",
    "POST /api/v0/processes/start-tracked",
    "POST /api/v0/processes/cancel-tracked",
    "GET /api/v0/processes/{id}/output-tracked",
    # coder's agent reads `wait_ms` only with `wait=true` (and then refuses one that is not a
    # non-negative integer with its tracked 400), so no schema can say when it is checked.
    "GET /api/v0/processes/{id}/output",
}


# A deadline on February 29 of a common year matches the document's RFC 3339 pattern (a
# pattern cannot know leap years); the server, like Go, refuses it as invalid JSON.
FEB_29 = re.compile(r"^([0-9]{4})-02-29T")


def _impossible_leap_day(body):
    if not isinstance(body, dict) or not isinstance(body.get("deadline"), str):
        return False
    m = FEB_29.match(body["deadline"])
    if not m:
        return False
    year = int(m.group(1))
    return not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))


def _message(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    return body.get("message"), body.get("detail")


def _has_integral_float(value):
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


# With SCHEMATHESIS_DROPPED_LOG set to a file name, each dropped failure's answer is appended
# to it, one line each, to see what the exclusions cover.
DROPPED_LOG = os.environ.get("SCHEMATHESIS_DROPPED_LOG")


def _drop(case, response):
    if DROPPED_LOG:
        with open(DROPPED_LOG, "a", encoding="utf-8") as log:
            log.write(f"{case.operation.label} {response.status_code} {response.text[:200]!r}\n")
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """True keeps the failure."""
    if failure.code != "ST202" or response is None:
        return True
    message, detail = _message(response)
    if not isinstance(message, str):
        return True
    operation = case.operation.label
    if (
        operation in TRACKED_OPERATIONS
        and message == TRACKED_FAILED
        and TRACKED_DETAILS.get(response.status_code) == detail
    ):
        return _drop(case, response)
    if response.status_code != 400:
        return True
    if (
        operation in TRACKED_OPERATIONS
        and message == "Request body must be valid JSON."
        and isinstance(detail, str)
        and detail.startswith("parsing time")
        and _impossible_leap_day(case.body)
    ):
        return _drop(case, response)
    if operation == "POST /api/v0/processes/start" and START_CALLER_FAULTS.fullmatch(message):
        return _drop(case, response)
    if operation in START_OPERATIONS and LIMIT_UNAVAILABLE.fullmatch(message):
        return _drop(case, response)
    if operation in PATTERN_OPERATIONS and message == "Invalid pattern." and detail:
        return _drop(case, response)
    if (
        message == "Request body must be valid JSON."
        and isinstance(detail, str)
        and INTEGRAL_FLOAT_DETAIL.search(detail)
        and _has_integral_float(case.body)
    ):
        return _drop(case, response)
    return True
