//! stslib: AWS STS temporary credentials for synchronous programs.
//!
//! From one IAM-user profile in the AWS CLI's files, stslib takes one
//! MFA-protected session token (`GetSessionToken`), assumes roles for many
//! profiles from it (`AssumeRole`), and keeps those role credentials fresh in
//! the background for hours without asking for MFA again, handing the
//! application only valid credentials. No async runtime: a blocking client
//! on `ureq`, one OS thread per session.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use stslib::Session;
//!
//! // `alice` holds an IAM user's keys (and mfa_serial); `dev` and `prod` are
//! // role profiles with `source_profile = alice` in ~/.aws/config.
//! let session = Session::builder().profile("alice").build()?;
//! session.generate_session_token(Duration::from_secs(12 * 3600), Some("123456"))?;
//! for (profile, outcome) in session.generate_credentials(&["dev", "prod"])? {
//!     match outcome {
//!         Ok(c) => println!("{profile}: {} until {}", c.access_key_id, c.expiration_iso()),
//!         Err(e) => eprintln!("{profile}: {e}"),
//!     }
//! }
//! // Later, from any thread: only valid credentials, never a network wait.
//! if let Some(c) = session.valid_credentials().get("prod") {
//!     println!("{} left", c.humanized_remaining());
//! }
//! session.halt()?; // or just drop it
//! # Ok::<(), stslib::Error>(())
//! ```
//!
//! The same flow runs offline on the bundled emulator in
//! `examples/demo.rs` (`cargo run --example demo`).
//!
//! # Pieces
//!
//! - [`profile::ProfileFiles`]: the AWS CLI's `config` and `credentials`
//!   files, parsed and normalised as the AWS SDKs do;
//!   [`profile::ProfileFiles::chain`] resolves a profile to its static keys
//!   and `AssumeRole` hops.
//! - [`StsClient`]: blocking, SigV4-signed `GetSessionToken`, `AssumeRole`,
//!   `GetCallerIdentity` and IAM `ListMFADevices`, with retries for
//!   throttling and 5xx, and typed errors ([`Error::Service`] carries the
//!   HTTP status, AWS code, message and request id); its request and answer
//!   types are in [`sts`].
//! - [`Credentials`]: the typed ("vault") form with start, expiration,
//!   duration, remaining lifetime; [`Credentials::boto_map_exposing_secrets`]
//!   gives the native STS field map ("boto").
//! - [`Session`]: one session token, many roles, one refresher thread;
//!   [`Event`]s by subscription.
//! - [`cache::Cache`]: the optional disk cache (`~/.stslib/cache`) that lets one
//!   MFA prompt serve many processes; the `stslib credential-process`
//!   command is built on it.
//! - [`kms::KmsClient`]: blocking `Encrypt`, `Decrypt`, `DescribeKey` (AWS JSON
//!   1.1) on the same transport as the STS client; [`kmsauth`]: python-kmsauth
//!   tokens ([`kmsauth::TokenGenerator`], [`kmsauth::TokenValidator`]) on it.
//! - `stslib::emulator` (cargo feature `emulator`, off by default; this
//!   crate's own tests, examples and benches turn it on): a local STS on
//!   127.0.0.1 with fault injection, for tests.
//!
//! # Threads
//!
//! Each [`Session`] runs at most one OS thread, `stslib-refresh`, and only
//! while some role would expire before the session token does (or an MFA
//! provider can renew the token), or a kmsauth generator renews its token
//! in the background
//! ([`refresh_in_background`](kmsauth::TokenGeneratorBuilder::refresh_in_background):
//! a task on that same thread, no thread of its own). The thread waits on a
//! channel select: halt first, the next deadline second, sleeping at most
//! [`RefreshPolicy::max_sleep`] before re-reading the wall clock (a
//! suspended laptop). [`Session::halt`] and `Drop` signal it and join it;
//! mid-request, the join waits at most the STS (or KMS) client's timeouts. Many roles are
//! assumed over a bounded number of short-lived scoped threads that are
//! joined before the call returns. Readers take an `Arc` snapshot that each
//! refresh swaps in whole: they never block on the network and never see a
//! half-updated set.
//!
//! # Logging and secrets
//!
//! stslib logs through the `log` crate: `info` for sessions and refresh
//! rounds, `debug` for requests and scheduling, `warn` for failures (a
//! session token renewal that keeps failing the same way is warned about
//! once, then at most once an hour, the retries in between at `debug`;
//! every failure is still an [`Event`]). Secret
//! access keys, session tokens and MFA codes never appear in its logs, in
//! `Debug` or `Display` of any type, or in error messages: they live in
//! [`Secret`], whose formatting prints `**redacted**`. **ureq's own `trace`
//! level logs raw wire bytes, including signed headers and response bodies
//! with credentials: never enable `trace` for the `ureq` target in
//! production.**

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
mod credentials;
mod env;
mod error;
#[allow(dead_code)]
mod rand;
mod secret;
mod words;

mod limits;
mod location;
pub mod profile;

mod endpoint;
pub mod kms;
mod sign;
pub mod sts;
mod transport;
mod wire;

mod event;
mod mfa;
mod refresher;
mod schedule;
mod session;
mod slot;
mod tasks;

pub mod cache;

pub mod kmsauth;

#[cfg(feature = "emulator")]
pub mod emulator;

// What the quick start touches; the rest is in the modules above
// (`profile`, `sts`, `cache`, `clock`, `kms`, `kmsauth`, `emulator`).
pub use crate::credentials::{AccessKey, Credentials};
pub use crate::env::Env;
pub use crate::error::{Error, Result, ServiceError};
pub use crate::event::Event;
pub use crate::limits::{DEFAULT_ROLE_LIFETIME, DEFAULT_TOKEN_LIFETIME};
pub use crate::schedule::RefreshPolicy;
pub use crate::secret::Secret;
pub use crate::session::{RoleOutcomes, Session, SessionBuilder, TokenMiss, TokenOrigin};
pub use crate::slot::CredentialSet;
pub use crate::sts::{StsClient, StsClientBuilder};
