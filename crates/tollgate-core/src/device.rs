//! The device authorization grant (RFC 8628): user codes and the state machine of one
//! device authorization. Storage is elsewhere; every transition here is a pure function of
//! the document, the input and the time, so every backend applies the same rules.
//!
//! ```text
//! authorize (device) ──► pending ──approve (user)──► approved ──token (device, once)──► consumed
//!                           │
//!                           └──────deny (user)─────► denied
//! ```
//!
//! Polling while pending answers `authorization_pending`; polling sooner than the interval
//! after the previous poll answers `slow_down` and adds [`SLOW_DOWN_STEP`] seconds to the
//! interval for good (RFC 8628 §3.5). Past `expires_at` every poll is `expired_token`.

use crate::claims::UpstreamSubject;
use crate::time::UnixTime;
use serde::{Deserialize, Serialize};

/// The letters of user codes: consonants without vowels (no words) and without
/// look-alikes of digits, so a code read aloud or off a screen is hard to mistype.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (shown as two groups of four: `BCDF-GHJK`), ~34.6 bits.
pub const USER_CODE_LEN: usize = 8;
/// Seconds added to the interval on every `slow_down`.
pub const SLOW_DOWN_STEP: u64 = 5;
/// Longest input [`normalize_user_code`] looks at; anything longer is not a user code.
const MAX_USER_CODE_INPUT: usize = 64;

/// A new user code, `XXXX-XXXX`, from `next_byte` (a CSPRNG in production).
///
/// Bytes ≥ 240 (= 12 × 20) are discarded, so each letter is uniformly distributed (no
/// modulo bias).
pub fn user_code(mut next_byte: impl FnMut() -> u8) -> String {
    let mut letters = Vec::with_capacity(USER_CODE_LEN);
    while letters.len() < USER_CODE_LEN {
        let b = next_byte();
        if b < 240 {
            letters.push(USER_CODE_ALPHABET[usize::from(b % 20)]);
        }
    }
    display(&letters)
}

fn display(letters: &[u8]) -> String {
    let (a, b) = letters.split_at(USER_CODE_LEN / 2);
    format!("{}-{}", String::from_utf8_lossy(a), String::from_utf8_lossy(b))
}

/// A user code as a person typed it, in its canonical form `XXXX-XXXX`: case does not
/// matter, and dashes and white space anywhere are ignored. `None` if what remains is not
/// eight letters of [`USER_CODE_ALPHABET`].
#[must_use]
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > MAX_USER_CODE_INPUT {
        return None;
    }
    let letters: Vec<u8> = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| u8::try_from(c.to_ascii_uppercase()).unwrap_or(0))
        .collect();
    (letters.len() == USER_CODE_LEN && letters.iter().all(|b| USER_CODE_ALPHABET.contains(b)))
        .then(|| display(&letters))
}

/// Where a device authorization is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceState {
    /// Waiting for a user to approve or deny.
    Pending,
    /// A user approved; the device has not collected its tokens yet.
    Approved,
    /// A user denied.
    Denied,
    /// The device collected its tokens (once).
    Consumed,
}

impl DeviceState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Approved => "approved",
            DeviceState::Denied => "denied",
            DeviceState::Consumed => "consumed",
        }
    }
}

/// What the approving user granted, decided at approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceApproval {
    pub user_id: String,
    /// The user's version at approval: a logout everywhere before the device polls ends
    /// the approval.
    pub user_ver: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Space-separated scopes of the tokens.
    pub scope: String,
    pub audience: String,
    /// The upstream identity of the sign-in the approving user's token came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSubject>,
    /// Whether the device also gets a refresh token (a session).
    pub refresh: bool,
}

/// One device authorization as stored. Neither the device code nor the user code is in
/// it: the store finds it by keyed hashes of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    /// A public id for audit events and logs (`dev_…`); not a secret.
    pub id: String,
    /// The client that asked (a public client: a name, not authenticated).
    pub client_id: String,
    /// The scope the device asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The audience the device asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Seconds the device must wait between polls; grows with every `slow_down`.
    pub interval: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<UnixTime>,
    pub state: DeviceState,
    /// The user who approved or denied, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<DeviceApproval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<UnixTime>,
}

/// Why a poll gets no tokens (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("the user has not approved yet; poll again in {interval} s")]
    Pending { interval: u64 },
    #[error("polling too fast; the interval is now {interval} s")]
    SlowDown { interval: u64 },
    #[error("the device code expired; start again")]
    Expired,
    #[error("the user denied the request")]
    Denied,
    #[error("the device code was used already (each is exchanged for tokens once)")]
    Used,
}

impl PollError {
    /// Whether the poll changed the document (it recorded the poll time or the interval),
    /// so the caller must store it.
    #[must_use]
    pub fn changes_document(&self) -> bool {
        matches!(self, PollError::Pending { .. } | PollError::SlowDown { .. })
    }
}

/// Why a user's decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("the code expired; ask the device for a new one")]
    Expired,
    #[error("the code was already {0}")]
    Decided(&'static str),
}

impl DeviceAuthorization {
    /// Whether the authorization is past its lifetime at `now`.
    #[must_use]
    pub fn expired(&self, now: UnixTime) -> bool {
        now >= self.expires_at
    }

    fn decidable(&self, now: UnixTime) -> Result<(), DecisionError> {
        if self.state != DeviceState::Pending {
            return Err(DecisionError::Decided(self.state.as_str()));
        }
        if self.expired(now) {
            return Err(DecisionError::Expired);
        }
        Ok(())
    }

    /// A user approves: only a pending, unexpired authorization, once.
    pub fn approve(&mut self, now: UnixTime, approval: DeviceApproval) -> Result<(), DecisionError> {
        self.decidable(now)?;
        self.state = DeviceState::Approved;
        self.decided_by = Some(approval.user_id.clone());
        self.decided_at = Some(now);
        self.approval = Some(approval);
        Ok(())
    }

    /// A user denies: only a pending, unexpired authorization, once.
    pub fn deny(&mut self, now: UnixTime, user_id: &str) -> Result<(), DecisionError> {
        self.decidable(now)?;
        self.state = DeviceState::Denied;
        self.decided_by = Some(user_id.to_owned());
        self.decided_at = Some(now);
        Ok(())
    }

    /// The device polls. An approved authorization is consumed and its approval returned
    /// (once); otherwise the RFC 8628 error. A pending poll records its time, and one that
    /// comes sooner than the interval after the previous poll also grows the interval.
    pub fn poll(&mut self, now: UnixTime) -> Result<DeviceApproval, PollError> {
        if self.state == DeviceState::Consumed {
            return Err(PollError::Used);
        }
        if self.expired(now) {
            return Err(PollError::Expired);
        }
        match self.state {
            DeviceState::Denied => Err(PollError::Denied),
            DeviceState::Approved => {
                let approval = self.approval.clone().ok_or(PollError::Denied)?;
                self.state = DeviceState::Consumed;
                self.consumed_at = Some(now);
                Ok(approval)
            }
            DeviceState::Pending | DeviceState::Consumed => {
                let too_early = self
                    .last_poll
                    .is_some_and(|last| now < last.plus(std::time::Duration::from_secs(self.interval)));
                self.last_poll = Some(now);
                if too_early {
                    self.interval = self.interval.saturating_add(SLOW_DOWN_STEP);
                    Err(PollError::SlowDown {
                        interval: self.interval,
                    })
                } else {
                    Err(PollError::Pending {
                        interval: self.interval,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pending() -> DeviceAuthorization {
        DeviceAuthorization {
            id: "dev_1".into(),
            client_id: "tollgate-cli".into(),
            scope: None,
            audience: None,
            created_at: UnixTime(1000),
            expires_at: UnixTime(1600),
            interval: 5,
            last_poll: None,
            state: DeviceState::Pending,
            decided_by: None,
            decided_at: None,
            approval: None,
            consumed_at: None,
        }
    }

    fn approval() -> DeviceApproval {
        DeviceApproval {
            user_id: "usr_a".into(),
            user_ver: 3,
            org_id: Some("org_1".into()),
            scope: "read".into(),
            audience: "tollgate".into(),
            upstream: None,
            refresh: true,
        }
    }

    fn seeded(seed: u64) -> impl FnMut() -> u8 {
        let mut x = seed | 1;
        move || {
            // xorshift64: plenty for test input.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        }
    }

    #[test]
    fn user_codes_have_the_shape_and_letters() {
        let code = user_code(seeded(7));
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.bytes()
                .filter(|b| *b != b'-')
                .all(|b| USER_CODE_ALPHABET.contains(&b))
        );
    }

    #[test]
    fn every_accepted_byte_maps_to_a_letter_equally_often() {
        let mut counts = [0usize; 20];
        for b in 0u8..=255 {
            let mut once = Some(b);
            // One letter from `b` if it is accepted; after it only zeros (B).
            let code = user_code(move || once.take().unwrap_or(0));
            if b < 240 {
                let first = code.as_bytes()[0];
                let i = USER_CODE_ALPHABET
                    .iter()
                    .position(|l| *l == first)
                    .expect("letter");
                counts[i] += 1;
            } else {
                assert_eq!(code, "BBBB-BBBB", "byte {b} must be discarded");
            }
        }
        assert!(counts.iter().all(|c| *c == 12), "{counts:?}");
    }

    #[test]
    fn normalization_accepts_what_people_type() {
        for input in [
            "bcdf-ghjk",
            "BCDFGHJK",
            " bcdf ghjk ",
            "Bc-Df-Gh-Jk",
            "bcdf\tghjk",
        ] {
            assert_eq!(
                normalize_user_code(input).as_deref(),
                Some("BCDF-GHJK"),
                "{input}"
            );
        }
        for input in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDF_GHJK",
            "ＢCDF-GHJK",
        ] {
            assert_eq!(normalize_user_code(input), None, "{input}");
        }
        assert_eq!(normalize_user_code(&format!("{}BCDFGHJK", "-".repeat(100))), None);
    }

    #[test]
    fn pending_polls_record_their_time_and_fast_ones_slow_down_for_good() {
        let mut d = pending();
        assert_eq!(d.poll(UnixTime(1000)), Err(PollError::Pending { interval: 5 }));
        assert_eq!(d.poll(UnixTime(1001)), Err(PollError::SlowDown { interval: 10 }));
        // Measured from the last poll with the grown interval.
        assert_eq!(d.poll(UnixTime(1006)), Err(PollError::SlowDown { interval: 15 }));
        assert_eq!(d.poll(UnixTime(1021)), Err(PollError::Pending { interval: 15 }));
        assert_eq!(d.poll(UnixTime(1035)), Err(PollError::SlowDown { interval: 20 }));
        assert_eq!(d.interval, 20);
        assert_eq!(d.last_poll, Some(UnixTime(1035)));
        assert!(PollError::SlowDown { interval: 1 }.changes_document());
        assert!(!PollError::Expired.changes_document());
    }

    #[test]
    fn approval_is_collected_once() {
        let mut d = pending();
        d.poll(UnixTime(1000)).expect_err("pending");
        d.approve(UnixTime(1002), approval()).expect("approve");
        assert_eq!(
            d.approve(UnixTime(1003), approval()),
            Err(DecisionError::Decided("approved"))
        );
        assert_eq!(
            d.deny(UnixTime(1003), "usr_b"),
            Err(DecisionError::Decided("approved"))
        );
        // Collecting is not rate limited: the approval is what the device waited for.
        assert_eq!(d.poll(UnixTime(1003)), Ok(approval()));
        assert_eq!(d.state, DeviceState::Consumed);
        assert_eq!(d.poll(UnixTime(1010)), Err(PollError::Used));
        assert_eq!(d.poll(UnixTime(9999)), Err(PollError::Used));
    }

    #[test]
    fn denial_and_expiry() {
        let mut d = pending();
        d.deny(UnixTime(1100), "usr_b").expect("deny");
        assert_eq!(d.decided_by.as_deref(), Some("usr_b"));
        assert_eq!(d.poll(UnixTime(1101)), Err(PollError::Denied));
        assert_eq!(d.poll(UnixTime(1101)), Err(PollError::Denied));
        assert_eq!(d.poll(UnixTime(1600)), Err(PollError::Expired));

        let mut d = pending();
        assert_eq!(d.approve(UnixTime(1600), approval()), Err(DecisionError::Expired));
        assert_eq!(d.deny(UnixTime(1600), "u"), Err(DecisionError::Expired));
        assert_eq!(d.poll(UnixTime(1600)), Err(PollError::Expired));
        // An approval not collected in time is lost with the code.
        let mut d = pending();
        d.approve(UnixTime(1500), approval()).expect("approve");
        assert_eq!(d.poll(UnixTime(1600)), Err(PollError::Expired));
        assert_eq!(d.state, DeviceState::Approved);
    }

    #[test]
    fn the_document_round_trips_through_json() {
        let mut d = pending();
        d.approve(UnixTime(1002), approval()).expect("approve");
        let json = serde_json::to_string(&d).expect("serialize");
        assert!(json.contains("\"state\":\"approved\""), "{json}");
        let back: DeviceAuthorization = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, d);
    }

    proptest! {
        #[test]
        fn generated_codes_normalize_to_themselves_however_typed(
            seed in any::<u64>(),
            lower in any::<bool>(),
            dash in 0usize..3,
        ) {
            let code = user_code(seeded(seed));
            prop_assert!(code.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)));
            let mut typed = match dash {
                0 => code.clone(),
                1 => code.replace('-', ""),
                _ => code.replace('-', "  "),
            };
            if lower {
                typed = typed.to_lowercase();
            }
            prop_assert_eq!(normalize_user_code(&typed), Some(code));
        }

        #[test]
        fn normalization_yields_only_canonical_codes(input in "\\PC{0,20}") {
            if let Some(code) = normalize_user_code(&input) {
                prop_assert_eq!(code.len(), 9);
                prop_assert_eq!(&code[4..5], "-");
                prop_assert!(code.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)));
                prop_assert_eq!(normalize_user_code(&code), Some(code.clone()));
            }
        }

        #[test]
        fn codes_from_the_alphabet_are_always_accepted(letters in proptest::collection::vec(0usize..20, 8)) {
            let raw: String = letters.iter().map(|i| char::from(USER_CODE_ALPHABET[*i])).collect();
            let code = normalize_user_code(&raw.to_lowercase()).expect("accepted");
            prop_assert_eq!(code.replace('-', ""), raw);
        }
    }
}
