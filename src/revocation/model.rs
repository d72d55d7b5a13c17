//! The five kinds of revocation entry and how they combine: a later write
//! never shortens an earlier one.

use crate::claims::ClaimValue;

/// One revocation. Times are whole Unix seconds of the proxy's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The (subject, token id) pair is revoked until `until`.
    Token {
        subject: ClaimValue,
        token: ClaimValue,
        until: i64,
    },
    /// Tokens of `subject` with `iat < cutoff` are revoked; kept until `until`.
    Subject {
        subject: ClaimValue,
        cutoff: i64,
        until: i64,
    },
    /// Every token whose session claim (`revocation.session_claim`) equals
    /// `session` is revoked until `until`, whatever its subject or `iat`.
    Session { session: ClaimValue, until: i64 },
    /// Every token whose token claim (`revocation.token_claim`) equals
    /// `token` is revoked until `until`, whatever its subject (a CAEP
    /// `jwt_id` subject names a token by its id alone).
    TokenId { token: ClaimValue, until: i64 },
    /// Every token with `iat < cutoff` is revoked; kept until `until`.
    Global { cutoff: i64, until: i64 },
}

impl Entry {
    pub fn until(&self) -> i64 {
        match self {
            Entry::Token { until, .. }
            | Entry::Subject { until, .. }
            | Entry::Session { until, .. }
            | Entry::TokenId { until, .. }
            | Entry::Global { until, .. } => *until,
        }
    }

    /// `(cutoff, until)`; the cutoff is 0 for kinds that have none.
    pub fn times(&self) -> (i64, i64) {
        match self {
            Entry::Subject { cutoff, until, .. } | Entry::Global { cutoff, until } => {
                (*cutoff, *until)
            }
            other => (0, other.until()),
        }
    }

    /// Sets the times [`Entry::times`] reads.
    pub fn set_times(&mut self, new_cutoff: i64, new_until: i64) {
        match self {
            Entry::Subject { cutoff, until, .. } | Entry::Global { cutoff, until } => {
                *cutoff = new_cutoff;
                *until = new_until;
            }
            Entry::Token { until, .. }
            | Entry::Session { until, .. }
            | Entry::TokenId { until, .. } => *until = new_until,
        }
    }

    /// A label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Token { .. } | Entry::TokenId { .. } => "token",
            Entry::Subject { .. } => "subject",
            Entry::Session { .. } => "session",
            Entry::Global { .. } => "global",
        }
    }

    /// Identity of the entry: entries with the same identity merge.
    pub fn identity(&self) -> String {
        match self {
            Entry::Token { subject, token, .. } => {
                format!("t:{}:{}", subject.fragment(), token.fragment())
            }
            Entry::Subject { subject, .. } => format!("s:{}", subject.fragment()),
            Entry::Session { session, .. } => format!("i:{}", session.fragment()),
            Entry::TokenId { token, .. } => format!("j:{}", token.fragment()),
            Entry::Global { .. } => "g".to_string(),
        }
    }

    /// Merges `other` (same identity) into `self`, keeping the later of each time.
    pub fn merge(&mut self, other: &Entry) {
        match (self, other) {
            (Entry::Token { until, .. }, Entry::Token { until: u2, .. })
            | (Entry::Session { until, .. }, Entry::Session { until: u2, .. })
            | (Entry::TokenId { until, .. }, Entry::TokenId { until: u2, .. }) => {
                *until = (*until).max(*u2)
            }
            (
                Entry::Subject { cutoff, until, .. },
                Entry::Subject {
                    cutoff: c2,
                    until: u2,
                    ..
                },
            )
            | (
                Entry::Global { cutoff, until },
                Entry::Global {
                    cutoff: c2,
                    until: u2,
                },
            ) => {
                *cutoff = (*cutoff).max(*c2);
                *until = (*until).max(*u2);
            }
            _ => {}
        }
    }

    /// One line of text (no newline): `T until sub tok`, `S until cutoff sub`,
    /// `I until session`, `J until token`, `G until cutoff`.
    pub fn to_line(&self) -> String {
        match self {
            Entry::Token {
                subject,
                token,
                until,
            } => {
                format!("T {until} {} {}", subject.fragment(), token.fragment())
            }
            Entry::Subject {
                subject,
                cutoff,
                until,
            } => format!("S {until} {cutoff} {}", subject.fragment()),
            Entry::Session { session, until } => format!("I {until} {}", session.fragment()),
            Entry::TokenId { token, until } => format!("J {until} {}", token.fragment()),
            Entry::Global { cutoff, until } => format!("G {until} {cutoff}"),
        }
    }

    pub fn from_line(line: &str) -> Option<Entry> {
        let mut parts = line.split(' ');
        let kind = parts.next()?;
        let until: i64 = parts.next()?.parse().ok()?;
        let entry = match kind {
            "T" => Entry::Token {
                until,
                subject: ClaimValue::from_fragment(parts.next()?)?,
                token: ClaimValue::from_fragment(parts.next()?)?,
            },
            "S" => Entry::Subject {
                until,
                cutoff: parts.next()?.parse().ok()?,
                subject: ClaimValue::from_fragment(parts.next()?)?,
            },
            "I" => Entry::Session {
                until,
                session: ClaimValue::from_fragment(parts.next()?)?,
            },
            "J" => Entry::TokenId {
                until,
                token: ClaimValue::from_fragment(parts.next()?)?,
            },
            "G" => Entry::Global {
                until,
                cutoff: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(entry)
    }
}

pub use crate::claims::TokenRef;

/// Why a token is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Token,
    Subject,
    Session,
    Global,
    /// A `revocation.compat` library's record refuses it.
    Compat,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Token => "token",
            Reason::Subject => "subject",
            Reason::Session => "session",
            Reason::Global => "global",
            Reason::Compat => "compat",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ClaimValue {
        ClaimValue::Str(v.into())
    }

    #[test]
    fn lines_round_trip() {
        let entries = [
            Entry::Token {
                subject: s("a b:c"),
                token: ClaimValue::Num("7".into()),
                until: 10,
            },
            Entry::Subject {
                subject: s("u"),
                cutoff: 5,
                until: 99,
            },
            Entry::Session {
                session: s("sid 1"),
                until: 7,
            },
            Entry::TokenId {
                token: s("jti:1"),
                until: 8,
            },
            Entry::Global {
                cutoff: 1,
                until: 2,
            },
        ];
        for e in entries {
            assert_eq!(Entry::from_line(&e.to_line()), Some(e));
        }
        assert_eq!(Entry::from_line("T 1 sa"), None);
        assert_eq!(Entry::from_line("G 1 2 3"), None);
        assert_eq!(Entry::from_line("X 1 2"), None);
        assert_eq!(Entry::from_line("I 1 sa sb"), None);
    }

    #[test]
    fn merge_never_shortens() {
        let mut a = Entry::Subject {
            subject: s("u"),
            cutoff: 50,
            until: 100,
        };
        a.merge(&Entry::Subject {
            subject: s("u"),
            cutoff: 40,
            until: 90,
        });
        assert_eq!(
            a,
            Entry::Subject {
                subject: s("u"),
                cutoff: 50,
                until: 100
            }
        );
        a.merge(&Entry::Subject {
            subject: s("u"),
            cutoff: 60,
            until: 80,
        });
        assert_eq!(
            a,
            Entry::Subject {
                subject: s("u"),
                cutoff: 60,
                until: 100
            }
        );
    }
}
