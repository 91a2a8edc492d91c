//! Errors of compiling a schedule spec and of searching it.
//!
//! Every [`SpecError`] message starts with the spec field it is about (for example
//! `calendar[0]: Hour is not in range [0-23]`), so the RPC layer can return it as
//! INVALID_ARGUMENT as it is. The texts after the field follow the Temporal server's.

/// Why a `ScheduleSpec` cannot be canonicalized or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A calendar, cron string or interval is malformed. `field` names it, such as
    /// `calendar[1]`, `cron_string[0]`, `structured_calendar[2]` or `interval[0].phase`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The cron strings' `TZ=`/`CRON_TZ=` prefixes disagree with each other or with
    /// `timezone_name` / `timezone_data`.
    #[error("timezone_name: conflicting timezone names")]
    ConflictingTimezoneNames,
    /// `timezone_name` is not a time zone of the tz database.
    #[error("timezone_name: unknown time zone {name}")]
    UnknownTimeZone { name: String },
    /// `timezone_data` is not a valid TZif file.
    #[error("timezone_data: invalid time zone data: {message}")]
    TimeZoneData { message: String },
}

impl SpecError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The spec field the error is about.
    pub fn field(&self) -> &str {
        match self {
            SpecError::Invalid { field, .. } => field,
            SpecError::ConflictingTimezoneNames | SpecError::UnknownTimeZone { .. } => {
                "timezone_name"
            }
            SpecError::TimeZoneData { .. } => "timezone_data",
        }
    }
}

/// The search for the next matching time gave up: the spec's exclusions remove every
/// candidate for longer than [`crate::SearchLimits::max_iterations`] steps. The spec will
/// not resolve until it is edited (Temporal answers INVALID_ARGUMENT "the schedule calendar
/// specification has too many exclusions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the schedule calendar specification has too many exclusions: no time was found within {iterations} search steps; please modify the specification"
)]
pub struct SearchLimitExceeded {
    pub iterations: u64,
}
