//! (sts helper: sts)
