//! (profiles helper: location)
