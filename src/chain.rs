//! (profiles helper: chain)
