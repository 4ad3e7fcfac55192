//! Usage texts of the `stslib` command and its subcommands.

pub(crate) const USAGE: &str = "\
stslib: AWS STS temporary credentials from the AWS CLI's profile files

Usage: stslib [--region R] [--endpoint URL] [--no-cache] <command> [options]
       stslib --version

Commands:
  profiles [--json]        the normalised profiles of the current files
  whoami [--profile P]     GetCallerIdentity with the profile's credentials
  credentials --profile ROLE [--profile ROLE ...] [--mfa-code CODE]
              [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]
                           one MFA session token, then every role assumed from it
  credential-process [--profile ROLE] [--mfa-code CODE] [--lifetime D]
                           AWS credential_process JSON for one role (cached)
  export [--profile ROLE] [--format sh|fish|powershell|env] [--mfa-code CODE]
         [--lifetime D]    `export AWS_...` lines for eval
  exec [--profile ROLE] [--server] [--lifetime D] [--mfa-code CODE] [--nested]
       -- COMMAND [ARGS...]
                           run COMMAND with the role's credentials (--server:
                           through a loopback endpoint kept fresh for hours)
  session [--profile USER] [--lifetime D] [--mfa-code CODE|-] [--renew]
                           get and cache the session token ahead of time
  list                     profiles and what the cache holds for each, time left
  clear [--profile P]      delete cached sessions and roles (of P, or all)
  kmsauth generate|validate ...
                           python-kmsauth tokens (KMS Encrypt/Decrypt)
  help [command]           this text, or a command's

Global options:
  --region R               region for STS (default: profile's region, AWS_REGION, us-east-1)
  --endpoint URL           STS and IAM (MFA-device lookup) endpoint, winning over
                           all below; default, per service as the AWS SDKs:
                           AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL_IAM, then
                           AWS_ENDPOINT_URL, the profile's [services] section,
                           its endpoint_url, then AWS's own endpoint
                           (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true: AWS's own)
  --no-cache               neither read nor write the disk cache
                           (default: STSLIB_CACHE_DIR, else ~/.stslib/cache)
  --no-mfa                 a session token without MFA is meant (otherwise
                           finding no MFA device for the user is an error)
  -v, -vv, -vvv            more log lines on stderr (stslib's own: info, debug,
                           trace); warnings are always shown. STSLIB_LOG=debug
                           does the same; other crates only when named
                           (STSLIB_LOG=ureq=debug; ureq's trace prints secrets)
  -h, --help               help
  -V, --version            print the version

Every --profile defaults to AWS_PROFILE, else `default`.
Environment: AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL.
Exit status: 0 ok, 1 error, 2 usage.
";

pub(crate) const PROFILES_USAGE: &str = "\
Usage: stslib profiles [--json]

Prints the profiles of the AWS config and credentials files, normalised as the
AWS SDKs read them. Secret values are always printed as \"**redacted**\".

  --json    one JSON object: {\"profiles\": {NAME: {KEY: VALUE or {SUBKEY: VALUE}}},
            \"sso_sessions\": {...}}
";

pub(crate) const WHOAMI_USAGE: &str = "\
Usage: stslib whoami [--profile P] [--mfa-code CODE]

Calls GetCallerIdentity with the profile's credentials (assuming its roles
first when it is a role profile) and prints account, ARN and user id.

  --profile P      the profile (default: AWS_PROFILE, else `default`)
  --mfa-code CODE  the 6-digit MFA code, when a role in the chain names mfa_serial
";

pub(crate) const CREDENTIALS_USAGE: &str = "\
Usage: stslib credentials [--profile ROLE ...] [--mfa-code CODE]
                          [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]

The stslib flow: the role profiles' common source user (through
source_profile) takes one session token with GetSessionToken (with MFA when
the user has a device), then every role is assumed from it with AssumeRole.
Secret values are printed as \"**redacted**\" unless --show-secrets is given.
A role that fails is reported on stderr and the others are still printed;
the exit status is then 1.

  --profile ROLE      a role profile (repeatable; default AWS_PROFILE, else `default`)
  --mfa-code CODE     the 6-digit MFA code (needed when the user has an MFA device)
  --lifetime D        session token lifetime: 900s to 36h, e.g. 45m, 12h, 1h30m
                      (default 12h)
  --format F          vault (default: typed fields, one block per role),
                      boto (the native STS field map keyed sts-ROLE, as JSON),
                      json (one object keyed by role: AccessKeyId, SecretAccessKey,
                      SessionToken, Expiration)
  --show-secrets      print SecretAccessKey and SessionToken in clear text
";

pub(crate) const CREDENTIAL_PROCESS_USAGE: &str = "\
Usage: stslib credential-process [--profile ROLE] [--mfa-code CODE] [--lifetime DURATION]

Prints credentials for ROLE in the AWS credential_process format
({\"Version\": 1, AccessKeyId, SecretAccessKey, SessionToken, Expiration}), so
that `credential_process = stslib credential-process --profile ROLE` works in
~/.aws/config for the AWS CLI, botocore and the SDKs.

ROLE is resolved to its source user through source_profile. Cached role
credentials are reused while more than their refresh window remains; else a
cached session token is reused, else one is obtained with GetSessionToken
(the MFA code from --mfa-code, else asked on the terminal when there is one).
The code is asked for before the cross-process lock is taken; the lock is
held only to look again and record the fetch, never across the STS call, so
processes started together make one GetSessionToken and one AssumeRole per
role. Without a terminal, an error
says whether there is no session, it expired or STS rejected it, and to run
`stslib session --profile USER`.

  --profile ROLE      the role profile (default: AWS_PROFILE, else `default`)
  --mfa-code CODE     the 6-digit MFA code; `-` reads it from standard input
                      (argv is readable by other users in /proc)
  --lifetime D        lifetime of a new session token: 900s to 36h (default 12h)
";

pub(crate) const EXPORT_USAGE: &str = "\
Usage: stslib export [--profile ROLE] [--format sh|fish|powershell|env]
                     [--mfa-code CODE] [--lifetime DURATION]

Prints AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_CREDENTIAL_EXPIRATION and, when known, AWS_REGION and AWS_DEFAULT_REGION
for ROLE. Uses the cache as credential-process.

  --profile ROLE   the role profile (default: AWS_PROFILE, else `default`)
  --format F       sh (default): export NAME='value', for eval \"$(stslib export)\"
                   fish: set -gx NAME 'value';   for stslib export --format fish | source
                   powershell: $Env:NAME = 'value', for ... | Invoke-Expression
                   env: NAME=value, a dotenv file (docker run --env-file)

The region is --region, else the first `region` along the role's chain
(role profile, source profiles, user), else the `default` profile's.
";

pub(crate) const EXEC_USAGE: &str = "\
Usage: stslib exec [--profile ROLE] [--server] [--lifetime DURATION] [--mfa-code CODE]
                   [--nested] [-- COMMAND [ARGS...]]

Runs COMMAND (default: $SHELL) with ROLE's credentials. The session token is
the one `stslib session` cached (or a new one, asking for the MFA code).

Without --server the child gets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION: static, good until the
role credentials end (1 hour by default).

With --server it gets AWS_CONTAINER_CREDENTIALS_FULL_URI (http://127.0.0.1:PORT,
an ephemeral port) and AWS_CONTAINER_AUTHORIZATION_TOKEN (256 random bits),
which every AWS SDK and the AWS CLI read; the endpoint serves the role's
credentials, refreshed in the background, until the session token ends, so
long jobs never see expired credentials. It stops when COMMAND exits.

Both set AWS_REGION and AWS_DEFAULT_REGION when the region is known (as for
export) and STSLIB_EXEC=ROLE, and remove inherited AWS_PROFILE,
AWS_DEFAULT_PROFILE and credential variables that would override them.

The exit status is COMMAND's (128+N when killed by signal N; 127 when not
found). SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are passed on to it; Ctrl-C
(SIGINT) and SIGQUIT reach it from the terminal, and stslib waits for it.

  --profile ROLE    the role profile (default: AWS_PROFILE, else `default`)
  --server          serve the credentials on a loopback endpoint
  --lifetime D      lifetime of a new session token: 900s to 36h (default 12h)
  --mfa-code CODE   the 6-digit MFA code
  --nested          run even inside another profile's `stslib exec`
";

pub(crate) const SESSION_USAGE: &str = "\
Usage: stslib session [--profile USER] [--lifetime DURATION] [--mfa-code CODE|-] [--renew]

Gets the session token for the IAM user profile USER (default: AWS_PROFILE,
else `default`) and stores it in the cache, so later commands need no MFA code
until it ends. Without --mfa-code or --renew a cached token is reused while
more than its own refresh window remains. Prints whether it was reused or is
new, and when it ends.

  --lifetime D        900s to 36h, e.g. 45m, 12h, 1h30m (default 12h)
  --mfa-code CODE     the 6-digit MFA code: always makes a new session. `-`
                      reads one line of standard input, the safe way for
                      scripts (argv is readable by other users in /proc)
  --renew             a new session even if one is cached (the code is asked
                      on the terminal unless given)
";

pub(crate) const KMSAUTH_USAGE: &str = "\
Usage: stslib kmsauth generate --key KEY --from NAME --to NAME
                               [--user-type service|user] [--token-version 1|2]
                               [--lifetime 10m] [--context K=V]... [--profile P]
                               [--format text|json]
       stslib kmsauth validate --key KEY... [--user-key KEY]... [--scoped-key KEY=ACCOUNT]...
                               --to NAME --username NAME --token TOKEN|-
                               [--context K=V]... [--min-token-version N]
                               [--max-token-version N] [--max-lifetime 60m] [--profile P]

KMS authentication tokens, byte-compatible with python-kmsauth 0.6.3.

generate prints the token alone (text), or {\"username\", \"token\", \"not_before\",
\"not_after\"} (json). The username to send with it is `NAME` (version 1) or
`2/TYPE/NAME` (version 2, the default). KEY: alias name, alias ARN, key id or
key ARN. The token is back-dated 3 minutes; --lifetime must exceed that.

validate prints {\"username\", \"version\", \"from\", \"user_type\", \"payload\",
\"key_alias\"} and exits 0, or exits 1 with one line on stderr holding
python-kmsauth's message (e.g. \"Authentication error. General error.\").
--key is a service key, --user-key a user key, --scoped-key a service key of
another account: alias name, key id or key ARN (an alias ARN never matches, as
in python-kmsauth). --token - reads the token from stdin (keeps it out of argv).

Credentials: --profile when given; else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
(and AWS_SESSION_TOKEN) when set; else AWS_PROFILE or `default`. A role
profile is assumed through the cached session (--mfa-code CODE when needed).
Region: --region, the profile's region, AWS_REGION. Endpoint:
AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, the profile's endpoint_url, then
https://kms.REGION.amazonaws.com (plain http only to loopback).
";
