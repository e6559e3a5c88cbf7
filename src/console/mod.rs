//! The web console (issue #16).

pub mod review;
