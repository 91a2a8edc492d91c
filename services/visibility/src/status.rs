//! `ExecutionStatus` values: Temporal's `WorkflowExecutionStatus` enum by name or number.

use std::fmt;

/// A workflow execution status, numbered as in Temporal's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecutionStatus {
    Unspecified = 0,
    Running = 1,
    Completed = 2,
    Failed = 3,
    Canceled = 4,
    Terminated = 5,
    ContinuedAsNew = 6,
    TimedOut = 7,
    Paused = 8,
}

const ALL: [(ExecutionStatus, &str, &str); 9] = [
    (
        ExecutionStatus::Unspecified,
        "Unspecified",
        "WORKFLOW_EXECUTION_STATUS_UNSPECIFIED",
    ),
    (
        ExecutionStatus::Running,
        "Running",
        "WORKFLOW_EXECUTION_STATUS_RUNNING",
    ),
    (
        ExecutionStatus::Completed,
        "Completed",
        "WORKFLOW_EXECUTION_STATUS_COMPLETED",
    ),
    (
        ExecutionStatus::Failed,
        "Failed",
        "WORKFLOW_EXECUTION_STATUS_FAILED",
    ),
    (
        ExecutionStatus::Canceled,
        "Canceled",
        "WORKFLOW_EXECUTION_STATUS_CANCELED",
    ),
    (
        ExecutionStatus::Terminated,
        "Terminated",
        "WORKFLOW_EXECUTION_STATUS_TERMINATED",
    ),
    (
        ExecutionStatus::ContinuedAsNew,
        "ContinuedAsNew",
        "WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW",
    ),
    (
        ExecutionStatus::TimedOut,
        "TimedOut",
        "WORKFLOW_EXECUTION_STATUS_TIMED_OUT",
    ),
    (
        ExecutionStatus::Paused,
        "Paused",
        "WORKFLOW_EXECUTION_STATUS_PAUSED",
    ),
];

impl ExecutionStatus {
    /// The API number of the status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status with this API number.
    pub fn from_code(code: i64) -> Option<Self> {
        ALL.iter()
            .find(|(s, _, _)| i64::from(s.code()) == code)
            .map(|(s, _, _)| *s)
    }

    /// Temporal's short name (`Running`, `ContinuedAsNew`, ...), as stored and shown.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(s, _, _)| *s == self)
            .map(|(_, name, _)| *name)
            .unwrap_or("Unspecified")
    }

    /// Parses a status name as Temporal does: the short name (`Running`) or the full enum name
    /// (`WORKFLOW_EXECUTION_STATUS_RUNNING`), case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.iter()
            .find(|(_, short, long)| *short == name || *long == name)
            .map(|(s, _, _)| *s)
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        for (status, short, long) in ALL {
            assert_eq!(ExecutionStatus::from_name(short), Some(status));
            assert_eq!(ExecutionStatus::from_name(long), Some(status));
            assert_eq!(
                ExecutionStatus::from_code(i64::from(status.code())),
                Some(status)
            );
            assert_eq!(status.name(), short);
        }
        assert_eq!(ExecutionStatus::from_name("running"), None);
        assert_eq!(ExecutionStatus::from_name("RUNNING"), None);
        assert_eq!(ExecutionStatus::from_code(9), None);
        assert_eq!(ExecutionStatus::from_code(-1), None);
        assert_eq!(ExecutionStatus::ContinuedAsNew.code(), 6);
    }
}
