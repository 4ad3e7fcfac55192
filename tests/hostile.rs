//! Hostile input, property-based: profile files, profile graphs, STS
//! response bodies and cache files never make stslib panic, loop or hang;
//! they give an error (or a cache miss).
//!
//! The XML parsers themselves are crate-private and are fuzzed directly in
//! `src/wire.rs` (`mod proptests`); here the same bodies go through the
//! public client, served by a tiny responder on 127.0.0.1.

mod common;

use std::thread;
use std::time::Duration;

use common::responder::Responder;
use common::TempDir;
use proptest::prelude::*;
use stslib::cache::{Cache, CacheUser};
use stslib::profile::ProfileFiles;
use stslib::{AccessKey, Error, Secret, StsClient};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrunk failures are reported in the panic message; no files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- Profile files --------------------------------------------------------

/// Names that are valid identifiers, some of them special to the parser.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "default", "profile", "a", "b", "c", "dev", "x.y", "p-1"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9_./%@:+-]{1,8}",
    ]
}

/// A key: mostly ones the chain resolver reads.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "role_arn",
            "source_profile",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "mfa_serial",
            "duration_seconds",
            "credential_source",
            "credential_process",
            "web_identity_token_file",
            "sso_session",
            "region",
            "s3",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z_:.-]{1,6}",
        "[ -~]{1,6}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        Just(String::new()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
        Just("3600".to_owned()),
        Just("arn:aws:iam::123456789012:role/r".to_owned()),
    ]
}

/// One line of AWS-style INI; `Some(name)` when it is a clean profile
/// header for `name` in a config file (`[profile name]`) or a credentials
/// file (`[name]`), which must then appear in the parsed profiles.
#[derive(Debug, Clone)]
enum Line {
    Header { text: String, clean: Option<String> },
    Other(String),
}

fn line(credentials: bool) -> impl Strategy<Value = Line> {
    let header = name().prop_map(move |n| Line::Header {
        text: if credentials {
            format!("[{n}]")
        } else {
            format!("[profile {n}]")
        },
        clean: Some(n),
    });
    let odd_header = prop_oneof![
        name().prop_map(|n| format!("[sso-session {n}]")),
        name().prop_map(|n| format!("[ profile   {n} ] # note")),
        name().prop_map(|n| format!("[{n}")),
        "\\[[ -~]{0,10}\\]?",
    ]
    .prop_map(|text| Line::Header { text, clean: None });
    // Mostly lines that parse, so that most files do; a few that do not.
    let other = prop_oneof![
        12 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => (key(), value()).prop_map(|(k, v)| format!("{k}={v} ;c")),
        2 => key().prop_map(|k| format!("{k} =")),
        2 => (key(), value()).prop_map(|(k, v)| format!("  {k} = {v}")),
        1 => value().prop_map(|v| format!("\t{v}")),
        2 => value().prop_map(|v| format!("# {v}")),
        1 => value().prop_map(|v| format!("; {v}")),
        1 => Just(String::new()),
        1 => Just("   ".to_owned()),
        1 => Just("a = b\\".to_owned()),
        1 => Just("a = \\x12".to_owned()),
        1 => Just("a = b\r".to_owned()),
        1 => prop_oneof![
            (key(), value()).prop_map(|(k, v)| format!("{k} : {v}")),
            "[ -~]{0,16}",
            "\\PC{0,8}",
        ],
    ]
    .prop_map(Line::Other);
    prop_oneof![4 => header, 1 => odd_header, 30 => other]
}

/// A file: a clean header first, then lines.
fn file(credentials: bool) -> impl Strategy<Value = Vec<Line>> {
    (name(), prop::collection::vec(line(credentials), 0..24)).prop_map(move |(first, mut lines)| {
        let text = if credentials {
            format!("[{first}]")
        } else {
            format!("[profile {first}]")
        };
        lines.insert(
            0,
            Line::Header {
                text,
                clean: Some(first),
            },
        );
        lines
    })
}

fn text(lines: &[Line], eol: &str) -> String {
    lines
        .iter()
        .map(|l| match l {
            Line::Header { text, .. } | Line::Other(text) => text.as_str(),
        })
        .collect::<Vec<_>>()
        .join(eol)
}

fn check_round_trip(files: &ProfileFiles) {
    for name in files.profile_names() {
        let p = files
            .profile(name)
            .unwrap_or_else(|e| panic!("listed profile `{name}` not found: {e}"));
        assert_eq!(p.name(), name);
        for prop in p.properties() {
            assert_eq!(p.property(prop.key()), Some(prop));
        }
        // Resolution is allowed to fail, never to panic.
        let _ = files.chain(name);
    }
    for name in files.sso_sessions() {
        assert!(files.sso_session(name).is_some(), "{name}");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn profile_files_from_arbitrary_bytes(
        config in prop::collection::vec(any::<u8>(), 0..512),
        credentials in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let config = String::from_utf8_lossy(&config);
        let credentials = String::from_utf8_lossy(&credentials);
        if let Ok(files) = ProfileFiles::from_strings(&config, &credentials) {
            check_round_trip(&files);
        }
    }

    #[test]
    fn profile_files_from_arbitrary_strings(config in "\\PC{0,256}", credentials in any::<String>()) {
        if let Ok(files) = ProfileFiles::from_strings(&config, &credentials) {
            check_round_trip(&files);
        }
    }

    #[test]
    fn profile_files_from_ini_like_lines(
        config in file(false),
        credentials in file(true),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let result = ProfileFiles::from_strings(&text(&config, eol), &text(&credentials, eol));
        match result {
            Ok(files) => {
                check_round_trip(&files);
                for l in config.iter().chain(&credentials) {
                    if let Line::Header { clean: Some(n), .. } = l {
                        prop_assert!(files.profile(n).is_ok(), "[{}] lost: {:?}", n, files);
                    }
                }
            }
            Err(e) => prop_assert!(
                matches!(e, Error::Parse { line, .. } if line >= 1),
                "{:?}", e
            ),
        }
    }
}

// ---- Profile graphs -------------------------------------------------------

/// One profile of a generated graph, by index into the graph.
#[derive(Debug, Clone)]
struct Node {
    role: bool,
    /// Index of `source_profile` (may be out of range: a missing profile).
    source: Option<usize>,
    /// 0 none, 1 full, 2 id only, 3 secret only, 4 token only.
    keys: u8,
    extra: Option<&'static str>,
    duration: Option<String>,
}

fn node() -> impl Strategy<Value = Node> {
    (
        prop::bool::weighted(0.7),
        prop::option::weighted(0.9, 0usize..10),
        prop_oneof![2 => Just(0u8), 2 => Just(1u8), 1 => 2u8..5],
        prop::option::weighted(
            0.2,
            prop::sample::select(vec![
                "credential_source = Environment",
                "credential_process = /bin/true",
                "web_identity_token_file = /t",
                "sso_start_url = https://x",
                "mfa_serial = arn:aws:iam::123456789012:mfa/m",
                "external_id = ext",
                "role_session_name = s",
            ]),
        ),
        prop::option::weighted(
            0.2,
            prop_oneof![
                Just("3600".to_owned()),
                Just("899".to_owned()),
                "[0-9]{0,12}",
                "[ -~]{0,4}"
            ],
        ),
    )
        .prop_map(|(role, source, keys, extra, duration)| Node {
            role,
            source,
            keys,
            extra,
            duration,
        })
}

fn graph_files(nodes: &[Node]) -> (String, String) {
    let mut config = String::new();
    let mut credentials = String::new();
    for (i, n) in nodes.iter().enumerate() {
        config.push_str(&format!("[profile p{i}]\n"));
        if n.role {
            config.push_str(&format!("role_arn = arn:aws:iam::123456789012:role/r{i}\n"));
        }
        if let Some(s) = n.source {
            config.push_str(&format!("source_profile = p{s}\n"));
        }
        if let Some(x) = n.extra {
            config.push_str(x);
            config.push('\n');
        }
        if let Some(d) = &n.duration {
            config.push_str(&format!("duration_seconds = {d}\n"));
        }
        let keys = match n.keys {
            1 => "aws_access_key_id = AKIA1\naws_secret_access_key = S1\n",
            2 => "aws_access_key_id = AKIA1\n",
            3 => "aws_secret_access_key = S1\n",
            4 => "aws_session_token = T1\n",
            _ => "",
        };
        if !keys.is_empty() {
            credentials.push_str(&format!("[p{i}]\n{keys}"));
        }
    }
    (config, credentials)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn chain_on_arbitrary_graphs_terminates(nodes in prop::collection::vec(node(), 1..11)) {
        let (config, credentials) = graph_files(&nodes);
        let files = ProfileFiles::from_strings(&config, &credentials).unwrap();
        let count = nodes.len();
        // Resolve every profile on another thread: a loop shows as a
        // timeout instead of a hung test.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let worker = {
            let files = files.clone();
            thread::spawn(move || {
                let out: Vec<_> = (0..count).map(|i| files.chain(&format!("p{i}"))).collect();
                let _ = tx.send(out);
            })
        };
        let outcomes = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("chain resolution did not finish");
        worker.join().unwrap();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(chain) => {
                    prop_assert!(chain.roles.len() <= count);
                    prop_assert!(files.profile(&chain.source.profile).is_ok());
                    prop_assert!(!chain.source.keys.secret_access_key.is_empty());
                    if chain.roles.is_empty() {
                        prop_assert_eq!(chain.source.profile.clone(), format!("p{i}"));
                    } else {
                        prop_assert_eq!(chain.roles.last().unwrap().profile.clone(), format!("p{i}"));
                    }
                }
                Err(Error::ProfileLoop { chain }) => {
                    let last = chain.last().unwrap();
                    prop_assert!(chain[..chain.len() - 1].contains(last), "{:?}", chain);
                    prop_assert!(chain.len() <= count + 1);
                }
                Err(Error::InvalidProfile { .. } | Error::Unsupported { .. }) => {}
                Err(other) => prop_assert!(false, "p{}: unexpected {:?}", i, other),
            }
        }
    }
}

// ---- STS responses through the client --------------------------------------

fn keys() -> AccessKey {
    AccessKey {
        access_key_id: "AKIAHOSTILETEST00001".into(),
        secret_access_key: Secret::new("hostile/test/secret/key/0000000000000000"),
        session_token: None,
    }
}

fn client(url: &str) -> StsClient {
    StsClient::builder()
        .region("us-east-1")
        .endpoint(url)
        .iam_endpoint(url)
        .env(stslib::Env::from_pairs::<&str, &str>([]))
        .max_attempts(1)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Every call of the client on the body set in `server`.
fn call_all(c: &StsClient) -> Vec<Result<(), Error>> {
    let gst = stslib::sts::GetSessionTokenRequest::new();
    let ar = stslib::sts::AssumeRoleRequest::new("arn:aws:iam::123456789012:role/r", "s1");
    vec![
        c.get_caller_identity(&keys()).map(drop),
        c.get_session_token(&keys(), &gst).map(drop),
        c.assume_role(&keys(), &ar).map(drop),
        c.list_mfa_devices(&keys(), None).map(drop),
    ]
}

#[test]
fn hostile_success_bodies_are_response_errors() {
    let server = Responder::always(200, Vec::new());
    let c = client(&server.url);
    let wrap = |inner: &str| {
        format!(
            "<GetCallerIdentityResponse><GetCallerIdentityResult>{inner}\
             </GetCallerIdentityResult></GetCallerIdentityResponse>"
        )
    };
    let many_attributes: String = (0..100_000).map(|i| format!(" a{i}=''")).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "2 MiB",
            wrap(&" ".repeat(2 << 20)).into_bytes(),
            "larger than",
        ),
        ("1 MiB + 1", vec![b' '; (1 << 20) + 1], "larger than"),
        (
            "10 000 levels",
            wrap(&format!(
                "{}{}",
                "<a>".repeat(10_000),
                "</a>".repeat(10_000)
            ))
            .into_bytes(),
            "nested deeper",
        ),
        (
            "200 000 levels, unclosed",
            wrap(&"<a>".repeat(200_000)).into_bytes(),
            "nested deeper",
        ),
        (
            "250 000 elements",
            wrap(&"<a/>".repeat(250_000)).into_bytes(),
            "nodes limit",
        ),
        (
            "100 000 attributes",
            wrap(&format!("<Account{many_attributes}/>")).into_bytes(),
            "attributes",
        ),
        ("not UTF-8", b"\xff\xfe<a/>".to_vec(), "not UTF-8"),
        ("empty", Vec::new(), "invalid XML"),
    ];
    for (what, body, expect) in cases {
        server.set(200, body);
        for r in call_all(&c) {
            match r {
                Err(Error::Response { message, .. }) => {
                    assert!(message.contains(expect), "{what}: {message}")
                }
                other => panic!("{what}: expected Error::Response, got {other:?}"),
            }
        }
    }
    // As error answers, the same bodies degrade to a status-code error.
    server.set(400, wrap(&"<a>".repeat(10_000)).into_bytes());
    let e = c.get_caller_identity(&keys()).unwrap_err();
    assert_eq!(e.code(), Some("HttpStatus400"), "{e}");
    server.set(
        403,
        wrap(&format!("<Error{many_attributes}/>")).into_bytes(),
    );
    let e = c.get_caller_identity(&keys()).unwrap_err();
    assert_eq!(e.code(), Some("HttpStatus403"), "{e}");
}

proptest! {
    #![proptest_config(config(64))]

    /// Arbitrary bodies, with success and error statuses, through every
    /// call: an error of the right kind, never a panic.
    #[test]
    fn arbitrary_bodies_through_the_client(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "(<[A-Za-z]{1,3}>|</[A-Za-z]{1,3}>|[ -~]{0,4}){0,40}".prop_map(String::into_bytes),
        ],
        status in prop::sample::select(vec![200u16, 400, 403, 500]),
    ) {
        thread_local! {
            static SERVER: Responder = Responder::always(200, Vec::new());
        }
        SERVER.with(|server| -> Result<(), TestCaseError> {
            server.set(status, body);
            for r in call_all(&client(&server.url)) {
                match (status, r) {
                    (200, Err(Error::Response { .. })) => {}
                    (_, Err(Error::Service(s))) if s.status == status => {}
                    (_, other) => prop_assert!(false, "HTTP {}: {:?}", status, other),
                }
            }
            Ok(())
        })?;
    }
}

// ---- Cache files -----------------------------------------------------------

/// 64-bit FNV-1a, the cache's checksum (see src/cache/entry.rs).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/r";
const ALICE: CacheUser<'static> = CacheUser {
    profile: "alice",
    access_key_id: "AKIAHOSTILE000000001",
};

fn load_both(cache: &Cache, bytes: &[u8]) -> (bool, bool) {
    std::fs::write(cache.token_path(ALICE, Some(SERIAL)), bytes).unwrap();
    std::fs::write(cache.role_path(ALICE, "r", ROLE_ARN), bytes).unwrap();
    let token = cache.load_token(ALICE, Some(SERIAL), Duration::ZERO);
    let role = cache.load_role(ALICE, "r", ROLE_ARN, Duration::ZERO);
    (token.is_some(), role.is_some())
}

/// A cache entry's lines, each field drawn from plausible and broken
/// values, with a correct checksum so parsing gets past it.
fn entry_lines() -> impl Strategy<Value = Vec<String>> {
    let field = prop::sample::select(vec![
        "version",
        "kind",
        "source_profile",
        "user_key",
        "mfa_serial",
        "role_profile",
        "role_arn",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "start_time",
        "expiration",
        "created",
        "clock_offset_ms",
        "checksum",
        "",
    ]);
    let value = prop_oneof![
        Just("2".to_owned()),
        Just("0".to_owned()),
        Just(format!("{:016x}", fnv1a64(ALICE.access_key_id.as_bytes()))),
        Just("token".to_owned()),
        Just("role".to_owned()),
        Just("alice".to_owned()),
        Just(SERIAL.to_owned()),
        Just(ROLE_ARN.to_owned()),
        Just("2000-01-01T00:00:00Z".to_owned()),
        Just("2999-12-31T23:59:59.999999999Z".to_owned()),
        Just("9999-12-31T23:59:60Z".to_owned()),
        Just("-0001-01-01T00:00:00Z".to_owned()),
        "[ -~]{0,10}",
        "\\PC{0,6}",
    ];
    prop::collection::vec(
        prop_oneof![
            8 => (field, value).prop_map(|(f, v)| format!("{f}={v}")),
            1 => "[ -~]{0,10}",
        ],
        0..16,
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cache_files_of_arbitrary_bytes_are_misses(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        thread_local! {
            static DIR: TempDir = TempDir::new(&format!("hostile-bytes-{:?}", thread::current().id()));
        }
        DIR.with(|dir| {
            let cache = Cache::new(&dir.0);
            // A random checksum line cannot match by chance.
            assert_eq!(load_both(&cache, &bytes), (false, false));
        });
    }

    #[test]
    fn sealed_cache_entries_never_panic(lines in entry_lines()) {
        thread_local! {
            static DIR: TempDir = TempDir::new(&format!("hostile-sealed-{:?}", thread::current().id()));
        }
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str(&format!("checksum={:016x}\n", fnv1a64(text.as_bytes())));
        DIR.with(|dir| {
            let cache = Cache::new(&dir.0);
            let _ = load_both(&cache, text.as_bytes());
        });
    }
}

/// The positive control for the sealed entries: a hand-written entry with
/// a correct checksum loads, so the generator above reaches real parsing.
#[test]
fn a_hand_sealed_entry_loads() {
    let dir = TempDir::new("hostile-hand");
    let cache = Cache::new(&dir.0);
    let user_key = fnv1a64(ALICE.access_key_id.as_bytes());
    let mut text = format!(
        "version=2\nkind=token\nsource_profile=alice\nuser_key={user_key:016x}\n\
         mfa_serial={SERIAL}\naccess_key_id=ASIA1\nsecret_access_key=s\nsession_token=t\n\
         start_time=2000-01-01T00:00:00Z\nexpiration=2999-01-01T00:00:00Z\n\
         created=2000-01-01T00:00:00Z\nclock_offset_ms=0\n"
    );
    text.push_str(&format!("checksum={:016x}\n", fnv1a64(text.as_bytes())));
    assert_eq!(load_both(&cache, text.as_bytes()), (true, false));
}
