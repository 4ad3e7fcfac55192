//! AssumeRole through `StsClient` against the local emulator on loopback,
//! versus the floor: the same signed request built by hand with ureq +
//! aws-sigv4 + roxmltree on one reused `ureq::Agent`, no stslib code.
//!
//! Both sides send the same AssumeRole (signed with the same session-token
//! credentials, same parameters) to the same emulator, and parse the answer
//! into the four credential fields plus the expiration time. Runs are
//! interleaved (ABAB, then BABA) so drift on a noisy machine hits both.
//! Target: client p50 <= 1.0x floor p50.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/mod.rs"]
mod floor;

use std::hint::black_box;

use stslib::{AccessKey, AssumeRoleRequest, Secret, StsClient};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use common::{dist, pick, time_once, Stats};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/bench";
const SESSION_NAME: &str = "bench-session";

fn main() {
    common::header(
        "sts_round_trip",
        "AssumeRole via StsClient vs hand-built ureq+aws-sigv4+roxmltree, loopback emulator",
    );
    let emu = common::emulator(None);
    let endpoint = emu.endpoint();
    let agent = floor::agent();

    // Session-token credentials, taken by the floor, used by both sides.
    let gst = floor::Call::sts("GetSessionToken", &[], common::KEY_ID, common::SECRET, None);
    let reply = floor::floor_send(&agent, &endpoint, &gst).expect("GetSessionToken");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = floor::parse_creds(&reply.body);

    let client = StsClient::builder()
        .env(stslib::Env::from_pairs::<String, String>([]))
        .endpoint(&endpoint)
        .build()
        .expect("client");
    let keys = AccessKey {
        access_key_id: token.access_key_id.clone(),
        secret_access_key: Secret::new(token.secret.clone()),
        session_token: Some(Secret::new(token.token.clone())),
    };
    let request = AssumeRoleRequest::new(ROLE_ARN, SESSION_NAME).duration_seconds(3600);

    let stslib_once = || {
        let r = client
            .assume_role(&keys, &request)
            .expect("stslib AssumeRole");
        black_box(r);
    };
    let floor_once = || {
        let params = [
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", SESSION_NAME),
            ("DurationSeconds", "3600"),
        ];
        let call = floor::Call::sts(
            "AssumeRole",
            &params,
            &token.access_key_id,
            &token.secret,
            Some(&token.token),
        );
        let r = floor::floor_send(&agent, &endpoint, &call).expect("floor AssumeRole");
        assert_eq!(r.status, 200, "{}", r.body);
        black_box(parse_once(&r.body));
    };

    let warmup = pick(50, 10);
    for _ in 0..warmup {
        stslib_once();
        floor_once();
    }
    let rounds = pick(2000, 200);
    let mut lib = Vec::with_capacity(rounds);
    let mut base = Vec::with_capacity(rounds);
    for i in 0..rounds {
        // Alternate who goes first so neither always follows the other.
        if i % 2 == 0 {
            lib.push(time_once(stslib_once).0);
            base.push(time_once(floor_once).0);
        } else {
            base.push(time_once(floor_once).0);
            lib.push(time_once(stslib_once).0);
        }
    }
    let (lib, base) = (Stats::new(lib), Stats::new(base));
    dist("stslib StsClient::assume_role", &lib);
    dist("floor ureq+aws-sigv4+roxmltree", &base);
    common::context(&format!(
        "{} connections accepted by the emulator (both sides keep theirs alive)",
        emu.connection_count()
    ));
    let ratio = lib.p50() / base.p50();
    common::target(
        "p50 <= 1.0x floor",
        ratio <= 1.0,
        &format!(
            "{ratio:.3}x; p99 ratio {:.2}x",
            lib.p99() / base.p99().max(1.0)
        ),
    );
    emu.stop();
    common::summary("sts_round_trip", lib.p50(), ratio, "floor p50");
}

/// What a hand-written client would keep: the four credential fields and
/// the parsed expiration, from one parse of the document.
fn parse_once(xml: &str) -> (String, String, String, OffsetDateTime, String) {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    let text = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(str::to_owned)
            .expect(name)
    };
    let expiration = OffsetDateTime::parse(&text("Expiration"), &Rfc3339).expect("time");
    (
        text("AccessKeyId"),
        text("SecretAccessKey"),
        text("SessionToken"),
        expiration,
        text("Arn"),
    )
}
