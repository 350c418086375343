//! The combined publish flow (a signed-in user and a CI job together): its sessions and
//! their state machine. Storage is elsewhere; here every transition is a pure function of
//! the session, the input and the time, so both backends apply the same rules.
//!
//! ```text
//! init (user) ──► pending ──attest (runner OIDC token)──► attested ──combined──► token-issued
//!                    │                                       │                       │
//!                    └──────────── finalize (either party) ──┴───────────────────────┴──► finalized
//! ```

use crate::time::UnixTime;
use serde::{Deserialize, Serialize};

/// Where a publish session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishState {
    /// Created by the user; waiting for the runner.
    Pending,
    /// A runner's OIDC token matched a policy that allows this package.
    Attested,
    /// The combined token was handed out (once).
    TokenIssued,
    /// Closed with an outcome; nothing more happens.
    Finalized,
}

impl PublishState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PublishState::Pending => "pending",
            PublishState::Attested => "attested",
            PublishState::TokenIssued => "token-issued",
            PublishState::Finalized => "finalized",
        }
    }
}

/// The CI job that attested a session, as its verified token and the policy described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestedWorkload {
    /// The configured issuer's name and the upstream `iss`.
    pub issuer: String,
    pub iss: String,
    pub subject: String,
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub attested_at: UnixTime,
}

/// One progress report from the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub at: UnixTime,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

/// The end of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finalization {
    pub outcome: Outcome,
    /// `user` or `runner`.
    pub by: String,
    pub at: UnixTime,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The most progress reports a session keeps (the oldest go first).
pub const MAX_STATUS_UPDATES: usize = 50;

/// A publish session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishSession {
    pub id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub package: String,
    pub version: String,
    /// Keyed hash of the nonce the runner must present with its attestation.
    pub nonce_hash: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub state: PublishState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<AttestedWorkload>,
    /// Keyed hash of the runner's session secret (given at attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_jti: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<StatusUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalization: Option<Finalization>,
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the publish session expired; start a new one with `tollgate publish init`")]
    Expired,
    #[error("the publish session is {actual} (needs {needed})")]
    WrongState {
        actual: &'static str,
        needed: &'static str,
    },
}

impl PublishSession {
    fn live(&self, now: UnixTime) -> Result<(), PublishError> {
        if self.state != PublishState::Finalized && now >= self.expires_at {
            return Err(PublishError::Expired);
        }
        Ok(())
    }

    fn require(&self, allowed: &[PublishState], needed: &'static str) -> Result<(), PublishError> {
        if allowed.contains(&self.state) {
            Ok(())
        } else {
            Err(PublishError::WrongState {
                actual: self.state.as_str(),
                needed,
            })
        }
    }

    /// A runner attests: only a pending, unexpired session, once.
    pub fn attest(
        &mut self,
        now: UnixTime,
        workload: AttestedWorkload,
        runner_secret_hash: String,
    ) -> Result<(), PublishError> {
        self.require(&[PublishState::Pending], "pending")?;
        self.live(now)?;
        self.state = PublishState::Attested;
        self.workload = Some(workload);
        self.runner_secret_hash = Some(runner_secret_hash);
        Ok(())
    }

    /// The combined token is handed out: once, after attestation.
    pub fn issue_combined(&mut self, now: UnixTime, jti: String) -> Result<(), PublishError> {
        self.require(&[PublishState::Attested], "attested")?;
        self.live(now)?;
        self.state = PublishState::TokenIssued;
        self.combined_jti = Some(jti);
        Ok(())
    }

    /// The runner reports progress.
    pub fn report(&mut self, now: UnixTime, status: String, message: String) -> Result<(), PublishError> {
        self.require(
            &[PublishState::Attested, PublishState::TokenIssued],
            "attested or token-issued",
        )?;
        self.live(now)?;
        if self.status.len() >= MAX_STATUS_UPDATES {
            self.status.remove(0);
        }
        self.status.push(StatusUpdate {
            at: now,
            status,
            message,
        });
        Ok(())
    }

    /// Ends the session. Success needs an attested session; failure and cancellation end
    /// any open one. A finalized session stays as it is (single use).
    pub fn finalize(
        &mut self,
        now: UnixTime,
        outcome: Outcome,
        by: &str,
        message: String,
    ) -> Result<(), PublishError> {
        match outcome {
            Outcome::Succeeded => self.require(
                &[PublishState::Attested, PublishState::TokenIssued],
                "attested or token-issued",
            )?,
            Outcome::Failed | Outcome::Cancelled => self.require(
                &[
                    PublishState::Pending,
                    PublishState::Attested,
                    PublishState::TokenIssued,
                ],
                "open",
            )?,
        }
        self.live(now)?;
        self.state = PublishState::Finalized;
        self.finalization = Some(Finalization {
            outcome,
            by: by.to_owned(),
            at: now,
            message,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> PublishSession {
        PublishSession {
            id: "ps_1".into(),
            user_id: "u".into(),
            org_id: None,
            package: "acme-cli".into(),
            version: "1.0.0".into(),
            nonce_hash: "h".into(),
            created_at: UnixTime(100),
            expires_at: UnixTime(700),
            state: PublishState::Pending,
            workload: None,
            runner_secret_hash: None,
            combined_jti: None,
            status: Vec::new(),
            finalization: None,
        }
    }

    fn workload() -> AttestedWorkload {
        AttestedWorkload {
            issuer: "github".into(),
            iss: "https://token.actions.githubusercontent.com".into(),
            subject: "repo:acme/cli:ref:refs/tags/v1".into(),
            policy: "release".into(),
            repository: Some("acme/cli".into()),
            git_ref: None,
            workflow_ref: None,
            run_id: None,
            attested_at: UnixTime(200),
        }
    }

    #[test]
    fn the_happy_path_and_single_use_steps() {
        let mut s = session();
        assert!(matches!(
            s.issue_combined(UnixTime(150), "j".into()),
            Err(PublishError::WrongState { .. })
        ));
        s.attest(UnixTime(200), workload(), "r".into()).expect("attest");
        assert!(
            s.attest(UnixTime(201), workload(), "r2".into()).is_err(),
            "second attest"
        );
        s.report(UnixTime(210), "building".into(), String::new())
            .expect("report");
        s.issue_combined(UnixTime(220), "j".into()).expect("combined");
        assert!(
            s.issue_combined(UnixTime(221), "j2".into()).is_err(),
            "second combined"
        );
        s.finalize(UnixTime(230), Outcome::Succeeded, "runner", String::new())
            .expect("finalize");
        let again = s.finalize(UnixTime(231), Outcome::Failed, "user", String::new());
        assert_eq!(
            again,
            Err(PublishError::WrongState {
                actual: "finalized",
                needed: "open"
            })
        );
        assert_eq!(
            s.finalization.as_ref().map(|f| f.outcome),
            Some(Outcome::Succeeded)
        );
    }

    #[test]
    fn expiry_stops_every_step_but_a_finished_session_stays_readable() {
        let mut s = session();
        assert_eq!(
            s.attest(UnixTime(700), workload(), "r".into()),
            Err(PublishError::Expired)
        );
        let mut s = session();
        s.attest(UnixTime(200), workload(), "r".into()).expect("attest");
        assert_eq!(
            s.issue_combined(UnixTime(800), "j".into()),
            Err(PublishError::Expired)
        );
        assert_eq!(
            s.finalize(UnixTime(800), Outcome::Failed, "user", String::new()),
            Err(PublishError::Expired)
        );
    }

    #[test]
    fn success_needs_an_attestation_and_reports_are_capped() {
        let mut s = session();
        assert!(
            s.finalize(UnixTime(150), Outcome::Succeeded, "user", String::new())
                .is_err()
        );
        s.attest(UnixTime(200), workload(), "r".into()).expect("attest");
        for i in 0..(MAX_STATUS_UPDATES + 5) {
            s.report(UnixTime(300), format!("step {i}"), String::new())
                .expect("report");
        }
        assert_eq!(s.status.len(), MAX_STATUS_UPDATES);
        assert_eq!(s.status[0].status, "step 5");
        s.finalize(UnixTime(400), Outcome::Cancelled, "user", String::new())
            .expect("cancel");
    }
}
