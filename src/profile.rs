//! (profiles helper: profile)
