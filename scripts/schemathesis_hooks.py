"""schemathesis hooks for scripts/schemathesis.sh.

generateKey on the Administrator's own user would replace the key that authenticates
the whole run (allowed: an admin may rotate their own key), and every later request
would get 401. This hook sends only those requests to a decoy user instead.
"""
import os

import schemathesis

ADMIN = os.environ["KL_ADMIN_USER_ID"]
DECOY = os.environ["KL_DECOY_USER_ID"]


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "POST" and case.path == "/v1/users/{user_id}/key":
        if (case.path_parameters or {}).get("user_id") == ADMIN:
            case.path_parameters["user_id"] = DECOY
