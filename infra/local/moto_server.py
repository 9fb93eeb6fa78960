"""moto_server with IAM enforced, as strict as AWS for what the functions call.

- Every request must be signed by a known identity and allowed by its
  policies (moto's INITIAL_NO_AUTH_ACTION_COUNT: the first BOOTSTRAP_ACTIONS
  requests are free, which `stack.sh start` spends creating the local
  administrator, and every request after them is checked).
- AWS managed policies exist as moto ships them
  (MOTO_IAM_LOAD_MANAGED_POLICIES), e.g. AWSLambdaSQSQueueExecutionRole.
- Secrets Manager requests are checked against the secret's own ARN: moto
  checks them against "*", which no statement naming a secret matches, so
  without this every least-privilege GetSecretValue grant would be refused.
- The IAM backend is used by one request at a time: moto's server answers
  each request on a thread of its own, and a role created while another
  request's authorisation looks roles up failed that request with
  "dictionary changed size during iteration" (seen when test systems start
  in parallel).

Usage: python moto_server.py -H 127.0.0.1 -p PORT (moto_server's own options).
"""

import os
import sys

# The local administrator is made of three requests (CreateUser,
# AttachUserPolicy, CreateAccessKey): see infra/local/stack.sh.
BOOTSTRAP_ACTIONS = 3
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_ACTIONS)
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

import functools  # noqa: E402
import inspect  # noqa: E402
import threading  # noqa: E402

from moto.iam.models import IAMBackend  # noqa: E402
from moto.secretsmanager.responses import SecretsManagerResponse  # noqa: E402
from moto.server import main  # noqa: E402

_IAM_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _IAM_LOCK:
            return method(*args, **kwargs)

    return call


for _name, _method in list(vars(IAMBackend).items()):
    if not _name.startswith("__") and inspect.isfunction(_method):
        setattr(IAMBackend, _name, _serialised(_method))


def _secret_resource(self):
    secret_id = self._get_param("SecretId")
    if secret_id:
        try:
            return self.backend.describe_secret(secret_id).arn
        except Exception:  # an unknown secret: AWS checks the ARN asked for
            pass
    return "*"


SecretsManagerResponse._determine_resource = _secret_resource

if __name__ == "__main__":
    main(sys.argv[1:])
