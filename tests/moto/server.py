#!/usr/bin/env python3
"""Start, stop and configure a moto server on 127.0.0.1 for stslib's tests.

Run with the python of the venv that tests/moto/setup.sh builds:

    PY=tests/moto/.venv/bin/python
    $PY tests/moto/server.py free-port
    $PY tests/moto/server.py start --state-file /tmp/m/state.json [--port P]
    $PY tests/moto/server.py auth off --state-file /tmp/m/state.json
    $PY tests/moto/server.py auth on  --state-file /tmp/m/state.json
    $PY tests/moto/server.py stop --state-file /tmp/m/state.json

`start` launches `moto_server -H 127.0.0.1 -p P` detached (own session and
process group, output to `<state-file>.log`), waits for `GET /moto-api/`,
creates the fixtures below with authentication off, switches authentication
on and writes the state file (JSON, written atomically) before exiting; it
also prints one JSON line `{"pid", "endpoint", "state_file"}` on stdout:

    {
      "pid": 12345,                      # moto_server; leader of its group
      "port": 40123,
      "endpoint": "http://127.0.0.1:40123",
      "log_file": "/tmp/m/state.json.log",
      "account_id": "123456789012",
      "region": "us-east-1",
      "user": {"name": "alice", "path": "/ops/",
               "arn": "arn:aws:iam::123456789012:user/ops/alice",
               "access_key_id": "AKIA...", "secret_access_key": "..."},
      "mfa_serial": "arn:aws:iam::123456789012:mfa/alice",
      "roles": {"role-a": "arn:aws:iam::123456789012:role/role-a",
                "role-b": "...", "role-c": "..."},
      "chain": {"from": "role-a", "to": "role-c", "session_name": "stslib-chain"}
    }

Fixtures: IAM user `alice` (path `/ops/`) with one access key and an enabled
virtual MFA device; roles `role-a`, `role-b`, `role-c` whose trust policy
names alice; an inline policy on alice allowing `sts:AssumeRole` on the three
roles, `sts:GetSessionToken` and `iam:ListMFADevices`. For role chaining, `role-c` also trusts
`role-a`, and `role-a` has an inline policy allowing `sts:AssumeRole` on
`role-c` ("chain" in the state file). moto matches trust principals as exact
ARNs, so on moto the chain only works when the `role-a` session is named
"stslib-chain" (see selfcheck.py for this and other moto quirks).

`free-port` prints a port that was free on 127.0.0.1 a moment ago. `start`
without `--port` picks one itself and retries with another if moto cannot
bind it. Only standard library plus boto3 (from the venv) are used.
Exit status: 0 on success, 1 on any failure (message on stderr).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
REGION = "us-east-1"
USER = "alice"
USER_PATH = "/ops/"
ROLES = ("role-a", "role-b", "role-c")
CHAIN_FROM, CHAIN_TO = "role-a", "role-c"
CHAIN_SESSION = "stslib-chain"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class HarnessError(Exception):
    pass


def free_port():
    """A port that was free on 127.0.0.1 when this returns (bind :0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def moto_server_path():
    path = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.access(path, os.X_OK):
        raise HarnessError(
            f"moto_server not found next to {sys.executable}; "
            "run this script with the python of the venv built by tests/moto/setup.sh"
        )
    return path


def http(method, url, body=None, content_type=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def set_auth(endpoint, on):
    # A text/plain body holding the number of unchecked requests to allow:
    # 0 = check every request, inf = check none. (Form-encoded gives 500.)
    status, body = http(
        "POST",
        endpoint + "/moto-api/reset-auth",
        body=b"0" if on else b"inf",
        content_type="text/plain",
    )
    if status != 200:
        raise HarnessError(f"reset-auth returned {status}: {body[:200]!r}")


def tail(path, lines=30):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(proc, endpoint, log_file):
    """Poll GET /moto-api/ until it answers; fail if our child exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise HarnessError(
                f"moto_server exited with status {proc.returncode} before answering; "
                f"log tail:\n{tail(log_file)}"
            )
        try:
            status, _ = http("GET", endpoint + "/moto-api/", timeout=2.0)
            if status == 200:
                break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise HarnessError(
                f"moto_server did not answer within {READY_TIMEOUT_S:.0f} s; "
                f"log tail:\n{tail(log_file)}"
            )
        time.sleep(0.1)
    # Something else answering on the port would fool the poll; our child
    # would then have died on "address in use". Check it is still ours.
    time.sleep(0.2)
    if proc.poll() is not None:
        raise HarnessError(
            f"moto_server exited with status {proc.returncode}; another server "
            f"may be on that port; log tail:\n{tail(log_file)}"
        )


def spawn(port, log_file):
    env = dict(os.environ)
    # Nothing is checked until `set_auth(.., True)` after the fixtures exist.
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"
    # Keep the server deterministic: no proxy, default account.
    for var in ("MOTO_ACCOUNT_ID", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    log = open(log_file, "ab")
    try:
        return subprocess.Popen(
            [moto_server_path(), "-H", HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own session + process group, pgid == pid
            close_fds=True,
        )
    finally:
        log.close()


def boto_clients(endpoint):
    import boto3  # only from the venv; imported late so free-port/stop work anywhere

    session = boto3.session.Session(
        aws_access_key_id="fixture-setup",
        aws_secret_access_key="fixture-setup",
        region_name=REGION,
    )
    return (
        session.client("iam", endpoint_url=endpoint),
        session.client("sts", endpoint_url=endpoint),
    )


def create_fixtures(endpoint):
    iam, _ = boto_clients(endpoint)
    user = iam.create_user(UserName=USER, Path=USER_PATH)["User"]
    user_arn = user["Arn"]
    account_id = user_arn.split(":")[4]
    key = iam.create_access_key(UserName=USER)["AccessKey"]

    mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName=USER)["VirtualMFADevice"]
    serial = mfa["SerialNumber"]
    iam.enable_mfa_device(
        UserName=USER,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )

    role_arn_of = {
        name: f"arn:aws:iam::{account_id}:role/{name}" for name in ROLES
    }
    roles = {}
    for name in ROLES:
        # moto 5.2.5 compares the trust policy's principals with the caller's
        # ARN rebuilt *without* the user's path (user/alice, not
        # user/ops/alice), so name both forms; the real one is what AWS uses.
        principals = [user_arn, f"arn:aws:iam::{account_id}:user/{USER}"]
        if name == CHAIN_TO:
            # AWS matches a role ARN principal against every session of that
            # role; moto compares the caller's exact assumed-role session ARN.
            # Name both; with moto the chain works for CHAIN_SESSION only.
            principals.append(role_arn_of[CHAIN_FROM])
            principals.append(
                f"arn:aws:sts::{account_id}:assumed-role/{CHAIN_FROM}/{CHAIN_SESSION}"
            )
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=3600,
        )["Role"]
        roles[name] = role["Arn"]

    iam.put_user_policy(
        UserName=USER,
        PolicyName="stslib-assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": [roles[n] for n in ROLES],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "sts:GetSessionToken",
                        "Resource": "*",
                    },
                    {
                        # Session::mfa_serial falls back to ListMFADevices.
                        "Effect": "Allow",
                        "Action": "iam:ListMFADevices",
                        "Resource": "*",
                    },
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName=CHAIN_FROM,
        PolicyName="stslib-chain",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": roles[CHAIN_TO],
                    }
                ],
            }
        ),
    )
    return {
        "account_id": account_id,
        "region": REGION,
        "user": {
            "name": USER,
            "path": USER_PATH,
            "arn": user_arn,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        },
        "mfa_serial": serial,
        "roles": roles,
        "chain": {"from": CHAIN_FROM, "to": CHAIN_TO, "session_name": CHAIN_SESSION},
    }


def write_json_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def read_state(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot read state file {path}: {e}") from e


def cmd_start(args):
    state_file = os.path.abspath(args.state_file)
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    if os.path.exists(state_file):
        raise HarnessError(
            f"{state_file} exists: a server may still be running; `stop` it first"
        )
    log_file = state_file + ".log"
    attempts = 1 if args.port else 3
    last_error = None
    for _ in range(attempts):
        port = args.port or free_port()
        if not port_is_free(port):
            last_error = HarnessError(f"127.0.0.1:{port} is already in use")
            continue
        endpoint = f"http://{HOST}:{port}"
        proc = spawn(port, log_file)
        try:
            wait_ready(proc, endpoint, log_file)
            fixtures = create_fixtures(endpoint)
            set_auth(endpoint, True)
        except BaseException as e:
            kill_group(proc.pid)
            proc.wait()
            if isinstance(e, HarnessError):
                last_error = e
                continue
            raise
        state = {
            "pid": proc.pid,
            "port": port,
            "endpoint": endpoint,
            "log_file": log_file,
        }
        state.update(fixtures)
        write_json_atomic(state_file, state)
        # Leave the server running: it is in its own session, so it survives us.
        proc.returncode = 0  # silence Popen's "still running" ResourceWarning
        print(json.dumps({"pid": proc.pid, "endpoint": endpoint, "state_file": state_file}))
        return
    raise last_error


def is_our_server(pid):
    """True if pid is a live (non-zombie) moto_server process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and b"moto_server" in cmdline


def kill_group(pid):
    """SIGTERM the group led by pid (start_new_session made pid its leader)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def cmd_stop(args):
    state = read_state(args.state_file)
    pid = int(state["pid"])
    if is_our_server(pid):
        kill_group(pid)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while is_our_server(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_our_server(pid):
            os.killpg(pid, signal.SIGKILL)
            while is_our_server(pid):
                time.sleep(0.05)
    else:
        print(f"moto_server pid {pid} is not running", file=sys.stderr)
    os.remove(args.state_file)


def cmd_auth(args):
    state = read_state(args.state_file)
    set_auth(state["endpoint"], args.mode == "on")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port", help="print a free port on 127.0.0.1")
    p = sub.add_parser("start", help="start moto_server, create fixtures, auth on")
    p.add_argument("--port", type=int, default=0, help="default: pick a free one")
    p.add_argument("--state-file", required=True)
    p = sub.add_parser("stop", help="stop the server named in the state file")
    p.add_argument("--state-file", required=True)
    p = sub.add_parser("auth", help="switch request authentication on or off")
    p.add_argument("mode", choices=("on", "off"))
    p.add_argument("--state-file", required=True)
    args = parser.parse_args()
    try:
        if args.cmd == "free-port":
            print(free_port())
        elif args.cmd == "start":
            cmd_start(args)
        elif args.cmd == "stop":
            cmd_stop(args)
        else:
            cmd_auth(args)
    except (HarnessError, urllib.error.URLError, OSError) as e:
        print(f"server.py {args.cmd}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
