"""The functions' IAM roles on moto, from the SAM template itself.

Translates infra/template.yaml with the real SAM translator (the package
`aws-sam-translator` that cfn-lint brings), so SAM policy templates
(DynamoDBCrudPolicy, SQSSendMessagePolicy ...) and the managed policies SAM
adds for event sources (AWSLambdaSQSQueueExecutionRole ...) are expanded by
AWS's own code, never copied by hand. Then, for each function, creates its
role in moto (inline policies with the local resources' ARNs, managed
policies as moto ships them), assumes it, and prints the function's
temporary credentials.

Two things differ from AWS, both forced by moto and neither a grant:
- the trust policy: deployed, the Lambda service assumes the role; locally the
  local stack does (as its administrator), so the role trusts that identity;
- a policy document without a Version gets "2012-10-17" (moto refuses one
  without; SAM's expansions carry none).

Input (stdin, JSON):
  {"template": path, "prefix": str, "region": str,
   "refs": {logical id or parameter: value of !Ref},
   "attributes": {"LogicalId.Attribute": value of !GetAtt}}
Output (stdout, JSON): {FunctionLogicalId: {"role_arn", "access_key_id",
   "secret_access_key", "session_token"}}
Credentials and the endpoint come from the usual AWS_* environment (the local
stack's administrator).
"""

import json
import logging
import os
import re
import sys

import boto3
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

logging.getLogger("samtranslator").setLevel(logging.CRITICAL)

# What the translator asks a managed-policy name to resolve to. Our template
# names managed policies by ARN only; SAM adds the event sources' own by ARN.
MANAGED_POLICY_MAP = {}


def translate(path, region):
    template = cfn_yaml.load(path)
    # The translator wants S3 code locations; where the code is does not
    # matter for IAM.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://local/code.zip"
    os.environ["AWS_DEFAULT_REGION"] = region
    translator = Translator(managed_policy_map=MANAGED_POLICY_MAP, sam_parser=Parser())
    return json.loads(json.dumps(translator.translate(sam_template=template, parameter_values={})))


class Resolver:
    def __init__(self, refs, attributes):
        self.refs = refs
        self.attributes = attributes

    def ref(self, name):
        if name not in self.refs:
            raise SystemExit(f"roles.py: no local value for !Ref {name}")
        return self.refs[name]

    def attribute(self, name):
        if name not in self.attributes:
            raise SystemExit(f"roles.py: no local value for !GetAtt {name}")
        return self.attributes[name]

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.attribute(name))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name = ".".join(arg) if isinstance(arg, list) else arg
                return self.attribute(name)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    text, variables = arg
                    variables = {k: self.resolve(v) for k, v in variables.items()}
                else:
                    text, variables = arg, {}
                return self.sub(text, variables)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts))
            if key.startswith("Fn::"):
                raise SystemExit(f"roles.py: {key} is not supported in role policies")
        return {k: self.resolve(v) for k, v in value.items()}


def main():
    request = json.load(sys.stdin)
    region = request["region"]
    iam = boto3.client("iam")
    sts = boto3.client("sts")
    caller = sts.get_caller_identity()
    resources = translate(request["template"], region)["Resources"]
    resolver = Resolver(
        {
            **request["refs"],
            "AWS::Region": region,
            "AWS::AccountId": caller["Account"],
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": request["prefix"],
        },
        request["attributes"],
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": caller["Arn"]}, "Action": "sts:AssumeRole"}
        ],
    }
    credentials = {}
    for function_id, function in resources.items():
        if function.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = function["Properties"].get("Role", {})
        role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
        if role_id is None:
            raise SystemExit(f"roles.py: {function_id} has no role of the template's own")
        role = resolver.resolve(resources[role_id]["Properties"])
        role_name = f"{request['prefix']}-{role_id}"[:64]
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=43200,
        )["Role"]["Arn"]
        for policy in role.get("Policies", []):
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(
                RoleName=role_name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(document),
            )
        for policy_arn in role.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
        assumed = sts.assume_role(
            RoleArn=arn, RoleSessionName=function_id[:64], DurationSeconds=43200
        )["Credentials"]
        credentials[function_id] = {
            "role_arn": arn,
            "access_key_id": assumed["AccessKeyId"],
            "secret_access_key": assumed["SecretAccessKey"],
            "session_token": assumed["SessionToken"],
        }
    json.dump(credentials, sys.stdout)


if __name__ == "__main__":
    main()
