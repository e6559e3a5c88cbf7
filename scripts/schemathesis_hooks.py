"""schemathesis hooks for scripts/schemathesis.sh.

generateKey on the Administrator's own user would replace the key that authenticates
the whole run (allowed: an admin may rotate their own key), and every later request
would get 401. This hook sends only those requests to a decoy user instead.

schemathesis draws `Idempotency-Key` values from a small space and sends the same value
with different requests, which keyledger rightly refuses (422 `idempotency_key_reused`,
a documented answer). A client makes one key per request, so this hook makes a
well-formed key unique per call; a malformed one (empty, too long) is sent as drawn, so
that its refusal is still tested.
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
