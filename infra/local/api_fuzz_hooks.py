"""schemathesis hooks for infra/local/api-fuzz.sh.

Signs every generated webhook delivery as Meta would (HMAC-SHA256 of the
raw body with the app secret, in X-Hub-Signature-256), so the fuzz reaches
the parsing and storing behind the signature check, not only its refusal.
"""

import hashlib
import hmac
import json
import os

import schemathesis

WEBHOOK = ("POST", "/webhooks/whatsapp")
HEADER = "X-Hub-Signature-256"
# What schemathesis.toml gives the metaSignature scheme.
PLACEHOLDER = "sign-me"


@schemathesis.hook
def before_call(context, case, kwargs):
    if (case.operation.method.upper(), case.operation.path) != WEBHOOK:
        return
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == HEADER.lower()), None)
    secret = os.environ.get("FUZZ_META_APP_SECRET", "").encode()
    if name is None or headers[name] != PLACEHOLDER or not secret:
        return
    # The body as it will be sent: these bytes are what is signed.
    if isinstance(case.body, (bytes, bytearray)):
        body = bytes(case.body)
    elif isinstance(case.body, (dict, list, str, int, float, bool)) or case.body is None:
        body = json.dumps(case.body).encode()
    else:
        body = b""
    kwargs["data"] = body
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers[name] = f"sha256={signature}"
    case.headers = headers
