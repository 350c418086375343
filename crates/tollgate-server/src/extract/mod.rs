//! Request extractors: parse raw input into typed values once, at the edge.

pub mod admin;
pub mod bearer;
pub mod client_auth;
pub mod form;
pub mod json;
