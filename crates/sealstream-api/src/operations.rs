//! Operations: `GET /healthz`, `GET /metrics` (Prometheus text) and
//! `GET /openapi.json`.

use serde::{Deserialize, Serialize};

wire_enum! {
    /// What `GET /healthz` says while the server and its database answer.
    pub enum HealthStatus refuse "expected ok" {
        /// Both answer.
        Ok = "ok",
    }
}

/// `GET /healthz`: `{"status": "ok"}` (a refusal, 503, when the database
/// does not answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: HealthStatus,
}
