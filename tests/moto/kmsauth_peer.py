#!/usr/bin/env python3
"""python-kmsauth 0.6.3 as the peer of stslib's kmsauth, on a moto server
started by server.py (tests/moto_kmsauth.rs drives it).

Run with the python of the venv that tests/moto/setup.sh builds:

    PY=tests/moto/.venv/bin/python
    $PY tests/moto/kmsauth_peer.py setup --state-file /tmp/m/state.json
    $PY tests/moto/kmsauth_peer.py batch < ops.json > results.json

`setup` switches moto's authentication off, creates the KMS keys below in
the state file's region with the fixture credentials, gives the user
`alice` and the role `role-a` an inline policy allowing kms:Encrypt,
kms:Decrypt and kms:DescribeKey, switches authentication back on and prints
one JSON object:

    {"service": {"alias": "alias/authnz-service", "arn": "arn:aws:kms:..."},
     "user":    {...alias/authnz-user...},
     "scoped":  {...alias/authnz-sandbox...},
     "other":   {...alias/authnz-other...}}

`batch` reads one JSON object from stdin,

    {"endpoint": "http://127.0.0.1:P", "region": "us-east-1",
     "creds": {"AccessKeyId": ..., "SecretAccessKey": ..., "SessionToken": null},
     "ops": [OP, ...]}

and writes a JSON array with one result per OP, in order. OPs:

    {"op": "generate", "key": K, "from": F, "to": T, "user_type": "service",
     "version": 2, "lifetime": 10, "context": {...}}
        -> {"ok": true, "username": U, "token": TOKEN}   (KMSTokenGenerator)
    {"op": "validate", "username": U, "token": TOKEN, "to": T,
     "service_keys": [...], "user_keys": [...], "scoped_keys": {K: ACCOUNT},
     "min_version": 1, "max_version": 2, "max_lifetime": 60, "context": {...}}
        -> {"ok": true, "payload": {...}, "key_alias": A}
        or {"ok": false, "class": "TokenValidationError", "error": MESSAGE}
                                                           (KMSTokenValidator)
    {"op": "encrypt", "key": K, "plaintext": TEXT, "context": {...}}
        -> {"ok": true, "token": base64(CiphertextBlob)}   (raw kms.encrypt,
           for tokens with a chosen payload: expired, malformed, ...)

Any exception becomes {"ok": false, "class": NAME, "error": str(e)}.
Exit status: 0 when every op ran (whatever its result), 1 on harness failure.
"""

import argparse
import base64
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import server  # noqa: E402  (tests/moto/server.py: set_auth, read_state)

KEYS = {
    "service": "alias/authnz-service",
    "user": "alias/authnz-user",
    "scoped": "alias/authnz-sandbox",
    "other": "alias/authnz-other",
}
KMS_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]


def cmd_setup(args):
    import boto3

    state = server.read_state(args.state_file)
    endpoint, region = state["endpoint"], state["region"]
    server.set_auth(endpoint, False)
    try:
        session = boto3.session.Session(
            aws_access_key_id="fixture-setup",
            aws_secret_access_key="fixture-setup",
            region_name=region,
        )
        kms = session.client("kms", endpoint_url=endpoint)
        iam = session.client("iam", endpoint_url=endpoint)
        out = {}
        for name, alias in KEYS.items():
            meta = kms.create_key(Description=f"stslib kmsauth {name}")["KeyMetadata"]
            kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            out[name] = {"alias": alias, "arn": meta["Arn"], "key_id": meta["KeyId"]}
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": KMS_ACTIONS, "Resource": "*"}],
            }
        )
        iam.put_user_policy(UserName=state["user"]["name"], PolicyName="stslib-kms", PolicyDocument=policy)
        iam.put_role_policy(RoleName="role-a", PolicyName="stslib-kms", PolicyDocument=policy)
    finally:
        server.set_auth(endpoint, True)
    print(json.dumps(out))


def run_op(op, endpoint, region, creds):
    import kmsauth

    kind = op["op"]
    if kind == "generate":
        context = dict(op.get("context") or {})
        context["from"] = op["from"]
        context["to"] = op["to"]
        if op.get("version", 2) > 1:
            context["user_type"] = op.get("user_type", "service")
        gen = kmsauth.KMSTokenGenerator(
            op["key"],
            context,
            region,
            token_version=op.get("version", 2),
            token_lifetime=op.get("lifetime", 10),
            aws_creds=creds,
            endpoint_url=endpoint,
        )
        token = gen.get_token()
        if isinstance(token, bytes):
            token = token.decode("ascii")
        return {"ok": True, "username": gen.get_username(), "token": token}
    if kind == "validate":
        val = kmsauth.KMSTokenValidator(
            op.get("service_keys") or None,
            op.get("user_keys") or None,
            op["to"],
            region,
            scoped_auth_keys=op.get("scoped_keys") or None,
            minimum_token_version=op.get("min_version", 1),
            maximum_token_version=op.get("max_version", 2),
            auth_token_max_lifetime=op.get("max_lifetime", 60),
            aws_creds=creds,
            extra_context=op.get("context") or None,
            endpoint_url=endpoint,
        )
        ret = val.decrypt_token(op["username"], op["token"])
        return {"ok": True, "payload": ret["payload"], "key_alias": ret["key_alias"]}
    if kind == "encrypt":
        import boto3

        kms = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            region_name=region,
        ).client("kms", endpoint_url=endpoint)
        blob = kms.encrypt(
            KeyId=op["key"],
            Plaintext=op["plaintext"].encode("utf-8"),
            EncryptionContext=op.get("context") or {},
        )["CiphertextBlob"]
        return {"ok": True, "token": base64.b64encode(blob).decode("ascii")}
    raise ValueError(f"unknown op {kind!r}")


def cmd_batch(_args):
    import logging

    # kmsauth logs tracebacks for every refused token; keep stderr for real failures.
    logging.disable(logging.CRITICAL)
    req = json.load(sys.stdin)
    results = []
    for op in req["ops"]:
        try:
            results.append(run_op(op, req["endpoint"], req["region"], req["creds"]))
        except Exception as e:  # the verdict is the point: report it
            results.append({"ok": False, "class": type(e).__name__, "error": str(e)})
    json.dump(results, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup", help="create KMS keys and policies on a started server")
    p.add_argument("--state-file", required=True)
    sub.add_parser("batch", help="run generate/validate/encrypt ops from stdin")
    args = parser.parse_args()
    try:
        if args.cmd == "setup":
            cmd_setup(args)
        else:
            cmd_batch(args)
    except Exception as e:
        print(f"kmsauth_peer.py {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
