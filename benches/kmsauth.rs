//! kmsauth validations per second against the local emulator's KMS on
//! loopback, versus the floor: the same Decrypt request built by hand with
//! ureq + aws-sigv4 (their defaults, one reused agent), its JSON read with
//! serde_json and the payload's two times read and compared, no stslib
//! code.
//!
//! - miss: `TokenValidator::validate` of a token it has not seen (Decrypt,
//!   key check against the cached DescribeKey, plaintext and time checks,
//!   LRU insert) versus one floor Decrypt. Interleaved ABAB/BABA, in
//!   rounds that each make a new validator and a new floor agent (new
//!   connections, new emulator threads: where those land on the vCPUs moves
//!   a side's p50 for the connection's life, see `sts_round_trip`).
//!   Target: the median over rounds of each round's p50 ratio <= 1.10x.
//!   The whole bench runs on one CPU (`taskset -c 0`), as `sts_round_trip`
//!   times its target: on two, rounds spread 0.75x-2.3x by where the
//!   emulator's threads land, on one 0.95x-1.00x.
//! - warm: `validate` of a token already in the LRU (no network) versus the
//!   same floor Decrypt. Target: p50 <= 0.01x floor (a hit must cost well
//!   under a hundredth of a round trip).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use stslib::emulator::Emulator;
use stslib::kms::KmsClient;
use stslib::kmsauth::{Token, TokenGenerator, TokenValidator};
use stslib::{AccessKey, Env, Secret};

use common::{dist, pick, time_once, Stats};

const REGION: &str = "us-east-1";
const ALIAS: &str = "alias/bench";

fn main() {
    common::confine_to_one_cpu();
    common::header(
        "kmsauth",
        "TokenValidator::validate (LRU miss / warm) vs hand-built Decrypt with ureq+aws-sigv4+serde_json, loopback emulator",
    );
    let emu = Emulator::builder()
        .user(common::USER, common::KEY_ID, common::SECRET)
        .kms_key(REGION, [ALIAS])
        .start()
        .expect("emulator");
    let keys = AccessKey {
        access_key_id: common::KEY_ID.into(),
        secret_access_key: Secret::new(common::SECRET),
        session_token: None,
    };
    let client = || {
        KmsClient::builder()
            .env(Env::from_pairs::<String, String>([]))
            .region(REGION)
            .endpoint(emu.endpoint())
            .build()
            .expect("client")
    };
    let generator = TokenGenerator::builder(ALIAS, "svc-a", "svc-b")
        .client(client())
        .access_key(keys.clone())
        .build()
        .expect("generator");
    let rounds = pick(20, 3);
    let calls = pick(300, 40);
    let warmup = pick(10, 3);
    let tokens: Vec<Token> = (0..rounds * (calls + warmup))
        .map(|_| generator.generate().expect("token"))
        .collect();
    let validator = || {
        TokenValidator::builder("svc-b")
            .client(client())
            .access_key(keys.clone())
            .service_key(ALIAS)
            .cache_size(calls + warmup + 1)
            .build()
            .expect("validator")
    };
    let host = emu.endpoint().trim_start_matches("http://").to_owned();

    let mut miss = Vec::with_capacity(rounds * calls);
    let mut base = Vec::with_capacity(rounds * calls);
    let mut ratios = Vec::with_capacity(rounds);
    let mut last = None;
    for round in tokens.chunks(calls + warmup) {
        // New on both sides each round: connections and emulator threads.
        let validator = validator();
        // ureq's defaults, as the floor promises (a non-2xx answer is an
        // error there, and the floor panics on it either way).
        let agent = ureq::Agent::new_with_defaults();
        let floor_once = |token: &Token| {
            let r = floor_decrypt(&agent, &host, &token.username, token.token.expose());
            black_box(r);
        };
        let (warm_up, timed) = round.split_at(warmup);
        for t in warm_up {
            validator
                .validate(&t.username, t.token.expose())
                .expect("valid");
            floor_once(t);
        }
        let (mut m, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for (i, t) in timed.iter().enumerate() {
            let lib = || {
                black_box(
                    validator
                        .validate(&t.username, t.token.expose())
                        .expect("valid"),
                );
            };
            if i % 2 == 0 {
                m.push(time_once(lib).0);
                b.push(time_once(|| floor_once(t)).0);
            } else {
                b.push(time_once(|| floor_once(t)).0);
                m.push(time_once(lib).0);
            }
        }
        miss.extend_from_slice(&m);
        base.extend_from_slice(&b);
        ratios.push(Stats::new(m).p50() / Stats::new(b).p50());
        last = Some((validator, &round[warmup]));
    }
    // Warm: the tokens the last round validated are all in its LRU.
    let (validator, hot) = last.expect("a round");
    let warm = common::per_call(pick(200, 20), pick(1000, 100), || {
        black_box(
            validator
                .validate(&hot.username, hot.token.expose())
                .expect("valid"),
        );
    });
    let (miss, base, warm) = (Stats::new(miss), Stats::new(base), Stats::new(warm));
    dist("stslib validate, LRU miss", &miss);
    dist("stslib validate, LRU hit", &warm);
    dist("floor Decrypt ureq+aws-sigv4+serde_json", &base);
    let per_sec = |s: &Stats| 1e9 / s.p50();
    common::context(&format!(
        "validations/s at p50: miss {:.0}, warm {:.0}; floor Decrypts/s {:.0}",
        per_sec(&miss),
        per_sec(&warm),
        per_sec(&base)
    ));
    let ratios = Stats::new(ratios);
    common::context(&format!(
        "{rounds} rounds of {calls} misses per side, new validator and agent each round; \
         per-round p50 ratio: median {:.3}x, min {:.3}x, max {:.3}x",
        ratios.p50(),
        ratios.min(),
        ratios.max()
    ));
    let miss_ratio = ratios.p50();
    let warm_ratio = warm.p50() / base.p50();
    common::target(
        "miss p50 <= 1.10x floor (median of rounds)",
        miss_ratio <= 1.10,
        &format!(
            "{miss_ratio:.3}x; pooled p50 {:.3}x",
            miss.p50() / base.p50()
        ),
    );
    common::target(
        "warm p50 <= 0.01x floor",
        warm_ratio <= 0.01,
        &format!("{warm_ratio:.5}x"),
    );
    emu.stop();
    common::summary("kmsauth_miss", miss.p50(), miss_ratio, "floor Decrypt p50");
}

/// One Decrypt built from the libraries alone, with their defaults: the
/// body by serde_json, SigV4 by aws-sigv4, sent by ureq; then the payload's
/// times read and checked as a validator must.
fn floor_decrypt(agent: &ureq::Agent, host: &str, username: &str, token: &str) -> bool {
    let from = username.rsplit('/').next().unwrap_or(username);
    let mut ctx = BTreeMap::new();
    ctx.insert("to", "svc-b");
    ctx.insert("from", from);
    ctx.insert("user_type", "service");
    let body = serde_json::json!({"CiphertextBlob": token, "EncryptionContext": ctx}).to_string();
    let identity =
        aws_credential_types::Credentials::new(common::KEY_ID, common::SECRET, None, None, "floor")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("kms")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let headers = [
        ("host", host),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "TrentService.Decrypt"),
    ];
    let signable = SignableRequest::new(
        "POST",
        "/",
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = agent.post(format!("http://{host}/"));
    for (name, value) in &headers[1..] {
        req = req.header(*name, *value);
    }
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let mut resp = req.send(body.as_bytes()).expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = serde_json::from_reader(resp.body_mut().as_reader()).expect("json");
    let plain = aws_smithy_types::base64::decode(v["Plaintext"].as_str().expect("Plaintext"))
        .expect("base64");
    let payload: serde_json::Value = serde_json::from_slice(&plain).expect("payload");
    let (nb, na) = (
        payload["not_before"].as_str().expect("not_before"),
        payload["not_after"].as_str().expect("not_after"),
    );
    !v["KeyId"].as_str().unwrap_or_default().is_empty() && nb < na
}
