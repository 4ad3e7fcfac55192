//! Usage texts of the `stslib` command and its subcommands.

pub(crate) const USAGE: &str = "\
stslib: AWS STS temporary credentials from the AWS CLI's profile files

Usage: stslib [--region R] [--endpoint URL] <command> [options]

Commands:
  profiles [--json]        the normalised profiles of the current files
  whoami [--profile P]     GetCallerIdentity with the profile's credentials
  credentials --profile ROLE [--profile ROLE ...] [--mfa-code CODE]
              [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]
                           one MFA session token, then every role assumed from it
  credential-process --profile ROLE [--mfa-code CODE] [--lifetime D]
                           AWS credential_process JSON for one role (cached)
  export --profile ROLE [--mfa-code CODE] [--lifetime D]
                           `export AWS_...` lines for eval
  session [--profile USER] [--lifetime D] [--mfa-code CODE]
                           get and cache the session token ahead of time
  list                     profiles and what the cache holds for each, time left
  clear [--profile P]      delete cached sessions and roles (of P, or all)
  help [command]           this text, or a command's

Global options:
  --region R               region for STS (default: profile's region, AWS_REGION, us-east-1)
  --endpoint URL           STS endpoint, also used for the IAM MFA-device lookup
                           (default: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL,
                           profile endpoint_url, then the regional AWS endpoint)
  --no-cache               neither read nor write the disk cache
                           (default: STSLIB_CACHE_DIR, else ~/.stslib/cache)
  -v, -vv, -vvv            more log lines on stderr (stslib's own: info, debug,
                           trace); warnings are always shown. STSLIB_LOG=debug
                           does the same; other crates only when named
                           (STSLIB_LOG=ureq=debug; ureq's trace prints secrets)
  -h, --help               help

Environment: AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL.
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
Usage: stslib credentials --profile ROLE [--profile ROLE ...] [--mfa-code CODE]
                          [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]

The stslib flow: the role profiles' common source user (through
source_profile) takes one session token with GetSessionToken (with MFA when
the user has a device), then every role is assumed from it with AssumeRole.
Secret values are printed as \"**redacted**\" unless --show-secrets is given.
A role that fails is reported on stderr and the others are still printed;
the exit status is then 1.

  --profile ROLE      a role profile (repeatable)
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
Usage: stslib credential-process --profile ROLE [--mfa-code CODE] [--lifetime DURATION]

Prints credentials for ROLE in the AWS credential_process format
({\"Version\": 1, AccessKeyId, SecretAccessKey, SessionToken, Expiration}), so
that `credential_process = stslib credential-process --profile ROLE` works in
~/.aws/config for the AWS CLI, botocore and the SDKs.

ROLE is resolved to its source user through source_profile. Cached role
credentials are reused while more than their refresh window remains; else a
cached session token is reused, else one is obtained with GetSessionToken
(the MFA code from --mfa-code, else asked on the terminal when there is one),
under a cross-process lock so that processes started together ask once.

  --profile ROLE      the role profile
  --mfa-code CODE     the 6-digit MFA code
  --lifetime D        lifetime of a new session token: 900s to 36h (default 12h)
";

pub(crate) const EXPORT_USAGE: &str = "\
Usage: stslib export --profile ROLE [--mfa-code CODE] [--lifetime DURATION]

Prints `export AWS_ACCESS_KEY_ID=...` lines (and AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_CREDENTIAL_EXPIRATION) for ROLE, for
`eval \"$(stslib export --profile ROLE)\"`. Uses the cache as credential-process.
";

pub(crate) const SESSION_USAGE: &str = "\
Usage: stslib session [--profile USER] [--lifetime DURATION] [--mfa-code CODE]

Gets the session token for the IAM user profile USER (default: AWS_PROFILE,
else `default`) and stores it in the cache, so later commands need no MFA code
until it ends; a valid cached token is reused. Prints when it ends.

  --lifetime D        900s to 36h, e.g. 45m, 12h, 1h30m (default 12h)
  --mfa-code CODE     the 6-digit MFA code (asked on the terminal when missing)
";
