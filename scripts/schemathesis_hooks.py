"""schemathesis hooks for scripts/schemathesis.sh.

generateKey on the Administrator's own user would replace the key that authenticates
the whole run (allowed: an admin may rotate their own key), and every later request
would get 401. This hook sends only those requests to a decoy user instead.

schemathesis draws `Idempotency-Key` values from a small space and sends the same value
with different requests, which keyledger rightly refuses (422 `idempotency_key_reused`,
a documented answer). A client makes one key per request, so this hook makes a
well-formed key unique per call; a malformed one (empty, too long) is sent as drawn, so
that its refusal is still tested.

watchAuditEvents streams until its `until` position, or forever: any stream schemathesis
opens past the head would wait for records nobody writes and time out. This hook makes a
stream that would open end after record 1 (`until=1`, start 0); a start or `until` that
is not a non-negative integer is sent as drawn, so that its refusal is still tested.

`Keyledger-Min-Position` (and `min_position` in authorizeRequest's query and checkKey's
body) makes a node wait for a log position, then answer 503 `position_not_reached`: a
position past the head, which nobody will write during the run, is always a documented
503, which not_a_server_error counts as a failure. This hook sends a well-formed position
as 0 (reached at once); a malformed one is sent as drawn, so that its 400 is still tested.
"""
import itertools
import os

import schemathesis

ADMIN = os.environ["KL_ADMIN_USER_ID"]
DECOY = os.environ["KL_DECOY_USER_ID"]
MAX_IDEMPOTENCY_KEY_LEN = 255
CALLS = itertools.count()


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "POST" and case.path == "/v1/users/{user_id}/key":
        if (case.path_parameters or {}).get("user_id") == ADMIN:
            case.path_parameters["user_id"] = DECOY
    headers = case.headers or {}
    if case.method.upper() == "GET" and case.path == "/v1/audit/watch":
        bound_the_stream(case, headers)
    reach_at_once(case, headers)
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and is_well_formed_key(value):
            suffix = f"-{next(CALLS)}"
            # Unique, and no longer than the longest well-formed key.
            headers[name] = value[: MAX_IDEMPOTENCY_KEY_LEN - len(suffix)] + suffix


def is_well_formed_key(value):
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_LEN
        and value.isascii()
        and value.isprintable()
    )


def is_position(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0 or (
        isinstance(value, str) and value.isdigit()
    )


def bound_the_stream(case, headers):
    query = case.query if case.query is not None else {}
    starts = [query.get("after", 0)] + [v for k, v in headers.items() if k.lower() == "last-event-id"]
    if not all(is_position(value) for value in starts + [query.get("until", 1)]):
        return  # refused with 400 before anything streams
    query["after"] = 0
    query["until"] = 1
    for name in [k for k in headers if k.lower() == "last-event-id"]:
        headers[name] = "0"
    case.query = query


def reach_at_once(case, headers):
    for name in [k for k in headers if k.lower() == "keyledger-min-position"]:
        if is_position(headers[name]):
            headers[name] = "0"
    if case.query and is_position(case.query.get("min_position")):
        case.query["min_position"] = 0
    if isinstance(case.body, dict) and is_position(case.body.get("min_position")):
        case.body["min_position"] = 0
