//! (sts helper: endpoint)
