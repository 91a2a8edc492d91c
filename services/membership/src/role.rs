//! The roles a node can run; each role has its own hash ring.

use std::fmt;
use std::str::FromStr;

/// A service a node runs. Each role has its own ring over the live members that run it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Frontend,
    History,
    Matching,
    Worker,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Frontend, Role::History, Role::Matching, Role::Worker];

    /// The lowercase name (`"history"`), as in config files and the membership table.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::History => "history",
            Role::Matching => "matching",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of `frontend`, `history`, `matching`, `worker`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected one of frontend, history, matching, worker")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_lowercase() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).expect("serialize");
            assert_eq!(json, format!("\"{role}\""), "serde uses the same names");
            assert_eq!(
                serde_json::from_str::<Role>(&json).expect("deserialize"),
                role
            );
        }
        assert_eq!("history".parse::<Role>(), Ok(Role::History));
        assert!("History".parse::<Role>().is_err());
        assert!("".parse::<Role>().is_err());
    }
}
