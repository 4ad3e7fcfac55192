//! (sts helper: wire)
