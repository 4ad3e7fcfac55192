//! stslib: AWS STS temporary credentials for synchronous programs.
//!
//! (Crate documentation is written once the public API settles.)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod credentials;
mod env;
mod error;
#[allow(dead_code)]
mod rand;
mod secret;

mod chain;
mod location;
mod profile;

mod endpoint;
mod sts;
mod wire;

mod event;
mod refresher;
mod schedule;
mod session;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use crate::credentials::AccessKey;
pub use crate::env::Env;
pub use crate::error::{Error, Result, ServiceError};
pub use crate::event::Event;
pub use crate::schedule::RefreshPolicy;
pub use crate::secret::{Secret, REDACTED};
pub use crate::session::{
    CredentialSet, MfaProvider, RoleOutcomes, Session, SessionBuilder, DEFAULT_ROLE_LIFETIME,
    DEFAULT_TOKEN_LIFETIME,
};

// -- profiles: re-exports from location/profile/chain go here --
pub use crate::chain::{Chain, RoleHop, SourceKeys};
pub use crate::location::{FileLocations, Platform};
pub use crate::profile::{FileKind, Origin, Profile, ProfileFiles, Property};

// -- sts: re-exports from credentials/endpoint/sts/wire go here --
pub use crate::credentials::{humanize, AssumedRole, CallerIdentity, Credentials};
pub use crate::sts::{AssumeRoleRequest, GetSessionTokenRequest, StsClient, StsClientBuilder};
