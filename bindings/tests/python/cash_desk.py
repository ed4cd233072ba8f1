"""The operator's cash-in, the only way money enters a balance from outside:
what the test wallets are funded with. scripts/test-bindings starts the
server with an operator token and passes it in CLINK_TEST_OPERATOR_TOKEN."""

import itertools
import json
import os
import urllib.request

_keys = itertools.count()


def cash_in(phone, amount):
    """Credits `amount` to the user of `phone` (as typed); returns the answer."""
    request = {
        "idempotency_key": f"py-{os.getpid()}-{next(_keys)}",
        "phone": phone,
        "amount": amount,
        "reference": "test desk",
    }
    req = urllib.request.Request(
        os.environ["CLINK_TEST_SERVER_URL"] + "/v1/operator/cash-in",
        data=json.dumps(request).encode(),
        headers={
            "content-type": "application/json",
            "authorization": "Bearer " + os.environ["CLINK_TEST_OPERATOR_TOKEN"],
        },
        method="POST",
    )
    with urllib.request.urlopen(req) as response:
        assert response.status == 201
        return json.loads(response.read())
