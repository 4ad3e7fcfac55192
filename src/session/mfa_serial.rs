//! Which MFA device the session token is asked with: the user profile's
//! `mfa_serial`, else the one its role profiles agree on, else IAM's answer.

use crate::error::{Error, Result};

use super::Session;

impl Session {
    pub(super) fn resolve_mfa_serial(&self) -> Result<Option<String>> {
        let files = &self.files;
        if let Some(s) = files.profile(&self.shared.profile)?.get("mfa_serial") {
            return Ok(Some(s.to_owned()));
        }
        // Role profiles sourced from this user that name a device.
        let mut found: Option<(String, String)> = None;
        for name in files.profile_names() {
            let Ok(chain) = files.chain(name) else {
                continue;
            };
            if chain.source.profile != self.shared.profile {
                continue;
            }
            for hop in &chain.roles {
                if let Some(serial) = &hop.mfa_serial {
                    match &found {
                        Some((first, other)) if first != serial => {
                            return Err(Error::invalid_profile(
                                &hop.profile,
                                Some("mfa_serial"),
                                format!(
                                    "names MFA device `{serial}` but profile `{other}` names \
                                     `{first}`; role profiles of one user must agree \
                                     (or set mfa_serial on `{}`)",
                                    self.shared.profile
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => found = Some((serial.clone(), hop.profile.clone())),
                    }
                }
            }
        }
        if let Some((serial, _)) = found {
            return Ok(Some(serial));
        }
        // Ask IAM. The user name comes from the caller identity's ARN.
        let client = &self.shared.client;
        let who = client.get_caller_identity(&self.shared.user)?;
        let iam = match client.list_mfa_devices(&self.shared.user, who.user_name()) {
            Ok(serials) => match serials.into_iter().next() {
                Some(serial) => return Ok(Some(serial)),
                None => format!(
                    "IAM lists no MFA device for user `{}`",
                    who.user_name().unwrap_or(&who.arn)
                ),
            },
            Err(e) if e.code() == Some("AccessDenied") => {
                format!("IAM ListMFADevices was denied ({e})")
            }
            Err(e) => return Err(e),
        };
        let looked = format!(
            "no MFA device found: profile `{}` has no mfa_serial, no role profile \
             sourced from it names one, and {iam}",
            self.shared.profile
        );
        if self.require_mfa {
            return Err(Error::invalid_profile(
                &self.shared.profile,
                Some("mfa_serial"),
                format!(
                    "{looked}; set mfa_serial on `{}`, or allow a session without MFA \
                     (`--no-mfa`, SessionBuilder::require_mfa(false))",
                    self.shared.profile
                ),
            ));
        }
        log::warn!("{looked}; the session token is made without MFA");
        Ok(None)
    }
}
