#!/usr/bin/env python3
"""Prove the moto harness (tests/moto/server.py) before Rust tests rely on it.

    tests/moto/.venv/bin/python tests/moto/selfcheck.py [--state-file F]

Without --state-file it starts its own server through server.py's command
line (exactly as the Rust tests do), checks it with boto3, and stops it. With
--state-file it checks an already running server and leaves it running (auth
is switched off and on again during the check). Exit status 0 = all checks
passed; 1 = at least one failed (each failure is printed).

moto 5.2.5 behaviour found while writing this (beyond the better-known
points: what auth checks, GetSessionToken's placeholder credentials, the
form re-encoding before hashing, POST only, the two error layouts):
- The auth layer names an IAM user `arn:aws:iam::ACCT:user/NAME` with the
  user's path dropped (AccessDenied messages say `user/alice`; trust policies
  are matched against that), while GetCallerIdentity correctly reports
  `user/ops/alice`. server.py puts both forms in the trust policies.
- Trust policy principals are compared as exact strings with the caller's
  ARN: a role ARN principal does NOT match sessions of that role (AWS does),
  only the exact `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` does. So role
  chaining works on moto only for a fixed session name (state "chain").
- In a trust policy, a statement whose Action matches but whose Principal
  does not yields an explicit Deny, so a second statement for another
  principal can never help: keep all principals in one statement.
- Identity policies: AssumeRole is authorised against Resource = RoleArn,
  GetSessionToken against "*". Assumed-role credentials are authorised with
  the role's own inline/attached policies.
- An IAM user's long-term key sent WITH an X-Amz-Security-Token header (any
  value) is rejected as InvalidClientTokenId: send no token header at all for
  long-term keys, never an empty one.
- AssumeRole defaults to 3600 s; DurationSeconds above the role's
  MaxSessionDuration (even 86400) is accepted. GetSessionToken defaults to
  43200 s and returns the fixed AKIAIOSFODNN7EXAMPLE credentials.
- POST /moto-api/reset-auth also resets the request counter; body "inf"
  switches checking off again. moto_server is ready in about 1 s.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")

failures = []


def check(label, cond, detail=""):
    if cond:
        print(f"ok   {label}")
    else:
        print(f"FAIL {label} {detail}")
        failures.append(label)


def server_cli(*args):
    r = subprocess.run(
        [sys.executable, SERVER, *args], capture_output=True, text=True, timeout=90
    )
    if r.returncode != 0:
        raise RuntimeError(f"server.py {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def client(state, key_id, secret, token=None):
    return boto3.client(
        "sts",
        endpoint_url=state["endpoint"],
        region_name=state["region"],
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def error_of(call):
    """(code, http status) of a ClientError, or (None, None) if the call worked."""
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"].get(
            "HTTPStatusCode"
        )
    return None, None


def check_schema(state):
    for key, kind in [
        ("pid", int),
        ("port", int),
        ("endpoint", str),
        ("log_file", str),
        ("account_id", str),
        ("region", str),
        ("user", dict),
        ("mfa_serial", str),
        ("roles", dict),
        ("chain", dict),
    ]:
        check(f"state has {key}", isinstance(state.get(key), kind), repr(state.get(key)))
    for key in ("name", "path", "arn", "access_key_id", "secret_access_key"):
        check(f"state user has {key}", isinstance(state["user"].get(key), str))
    check("state roles", sorted(state["roles"]) == ["role-a", "role-b", "role-c"])
    check(
        "endpoint is loopback",
        state["endpoint"] == f"http://127.0.0.1:{state['port']}",
        state["endpoint"],
    )


def check_auth_on(state):
    user = state["user"]
    acct = state["account_id"]
    alice = client(state, user["access_key_id"], user["secret_access_key"])

    ident = alice.get_caller_identity()
    check("GetCallerIdentity as alice", ident["Arn"] == user["arn"], ident["Arn"])
    check("account id", ident["Account"] == acct, ident["Account"])

    code, status = error_of(
        client(state, user["access_key_id"], "x" * 40).get_caller_identity
    )
    check("wrong secret -> SignatureDoesNotMatch", (code, status) == ("SignatureDoesNotMatch", 403), f"{code} {status}")

    code, status = error_of(
        client(state, "AKIAUNKNOWNKEY000000", user["secret_access_key"]).get_caller_identity
    )
    check("unknown key -> InvalidClientTokenId", (code, status) == ("InvalidClientTokenId", 403), f"{code} {status}")

    code, _ = error_of(
        client(state, user["access_key_id"], user["secret_access_key"], "tok").get_caller_identity
    )
    check("long-term key + token header -> InvalidClientTokenId", code == "InvalidClientTokenId", str(code))

    gst = alice.get_session_token(
        SerialNumber=state["mfa_serial"], TokenCode="123456", DurationSeconds=900
    )["Credentials"]
    check("GetSessionToken with MFA as alice", bool(gst["SessionToken"]))

    ar = alice.assume_role(
        RoleArn=state["roles"]["role-a"],
        RoleSessionName="selfcheck",
        SerialNumber=state["mfa_serial"],
        TokenCode="123456",
    )
    want = f"arn:aws:sts::{acct}:assumed-role/role-a/selfcheck"
    check("AssumeRole role-a as alice", ar["AssumedRoleUser"]["Arn"] == want, ar["AssumedRoleUser"]["Arn"])
    c = ar["Credentials"]
    role_a = client(state, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    arn = role_a.get_caller_identity()["Arn"]
    check("GetCallerIdentity as role-a session", arn == want, arn)

    code, _ = error_of(client(state, c["AccessKeyId"], c["SecretAccessKey"]).get_caller_identity)
    check("role creds without token -> InvalidClientTokenId", code == "InvalidClientTokenId", str(code))

    code, _ = error_of(
        lambda: alice.assume_role(
            RoleArn=f"arn:aws:iam::{acct}:role/not-allowed", RoleSessionName="selfcheck"
        )
    )
    check("AssumeRole outside alice's policy -> AccessDenied", code == "AccessDenied", str(code))

    chain = state["chain"]
    c = alice.assume_role(
        RoleArn=state["roles"][chain["from"]], RoleSessionName=chain["session_name"]
    )["Credentials"]
    hop = client(state, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    ar = hop.assume_role(RoleArn=state["roles"][chain["to"]], RoleSessionName="selfcheck-2")
    want = f"arn:aws:sts::{acct}:assumed-role/{chain['to']}/selfcheck-2"
    check("role chain from -> to", ar["AssumedRoleUser"]["Arn"] == want, ar["AssumedRoleUser"]["Arn"])
    code, _ = error_of(
        lambda: hop.assume_role(RoleArn=state["roles"]["role-b"], RoleSessionName="selfcheck")
    )
    check("role chain to role-b -> AccessDenied", code == "AccessDenied", str(code))


def check_auth_switch(state_file, state):
    wrong = client(state, state["user"]["access_key_id"], "x" * 40)
    server_cli("auth", "off", "--state-file", state_file)
    code, _ = error_of(wrong.get_caller_identity)
    check("auth off: wrong secret accepted", code is None, str(code))
    server_cli("auth", "on", "--state-file", state_file)
    code, _ = error_of(wrong.get_caller_identity)
    check("auth on again: wrong secret rejected", code == "SignatureDoesNotMatch", str(code))


def port_free(port):
    """True when nothing listens on `port` any more. SO_REUSEADDR, as every
    server sets it: connections the stopped server closed first linger in
    TIME_WAIT for a minute and would make a plain bind fail although the
    listener is gone."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-file", help="check this running server instead of starting one")
    args = parser.parse_args()

    if args.state_file:
        with open(args.state_file) as f:
            state = json.load(f)
        run_checks(args.state_file, state)
    else:
        with tempfile.TemporaryDirectory(prefix="stslib-moto-") as tmp:
            state_file = os.path.join(tmp, "state.json")
            t0 = time.monotonic()
            server_cli("start", "--state-file", state_file)
            print(f"started in {time.monotonic() - t0:.1f} s")
            with open(state_file) as f:
                state = json.load(f)
            try:
                run_checks(state_file, state)
            finally:
                server_cli("stop", "--state-file", state_file)
            pid = state["pid"]
            check("stop: process gone", not os.path.exists(f"/proc/{pid}/cmdline") or _zombie(pid))
            check("stop: port free", port_free(state["port"]))
            check("stop: state file removed", not os.path.exists(state_file))

    if failures:
        print(f"selfcheck: {len(failures)} check(s) FAILED: {', '.join(failures)}")
        sys.exit(1)
    print("selfcheck: all checks passed")


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def run_checks(state_file, state):
    check_schema(state)
    try:
        check_auth_on(state)
        check_auth_switch(state_file, state)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, RuntimeError) as e:
        check("no unexpected error", False, repr(e))


if __name__ == "__main__":
    main()
