//! Who the caller is and which roles it holds, and whether they allow a call: Temporal's
//! default claim mapper (a `permissions` claim of `namespace:role` strings, with
//! `temporal-system:<role>` for the whole cluster) and its default authorizer.

use std::collections::HashMap;

use crate::methods::{Access, MethodClass, Scope};

/// The namespace whose roles hold across the whole cluster.
pub const SYSTEM_NAMESPACE: &str = "temporal-system";

/// A set of roles (bits, as several permissions for one namespace combine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub const NONE: Roles = Roles(0);
    pub const READ: Roles = Roles(1);
    pub const WORKER: Roles = Roles(2);
    pub const WRITE: Roles = Roles(4);
    pub const ADMIN: Roles = Roles(8);

    /// The role a permission names (`read`, `write`, `worker`, `admin`, any case); anything
    /// else names none, as in Temporal.
    pub fn parse(role: &str) -> Roles {
        match role.to_ascii_lowercase().as_str() {
            "read" => Roles::READ,
            "worker" => Roles::WORKER,
            "write" => Roles::WRITE,
            "admin" => Roles::ADMIN,
            _ => Roles::NONE,
        }
    }

    pub fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// Whether these roles allow calls of `access`. Roles nest: admin allows everything,
    /// write every non-admin call, worker the worker calls and reads, read only reads.
    pub fn allow(self, access: Access) -> bool {
        let needed = match access {
            Access::Open => return true,
            Access::ReadOnly => Roles::READ,
            Access::Worker => Roles::WORKER,
            Access::Write => Roles::WRITE,
            Access::Admin => Roles::ADMIN,
        };
        // The strongest role held is at least the one needed.
        self.0 >= needed.0
    }

    /// The strongest role held, for logs and metrics.
    pub fn strongest(self) -> &'static str {
        match self.0 {
            0 => "none",
            1 => "read",
            2..=3 => "worker",
            4..=7 => "write",
            _ => "admin",
        }
    }
}

/// What the credentials of one call say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Who: the token's `sub`, or the client certificate's subject.
    pub subject: String,
    /// How the caller proved it: `jwt`, `mtls` or `internode`.
    pub auth_type: &'static str,
    /// Roles in every namespace (`temporal-system:<role>`).
    pub system: Roles,
    /// Roles per namespace.
    pub namespaces: HashMap<String, Roles>,
}

impl Claims {
    /// Add the roles a list of `namespace:role` permissions grants. Entries in another form
    /// are skipped (Temporal logs and ignores them too); what was skipped is returned.
    pub fn add_permissions<'a>(&mut self, permissions: impl IntoIterator<Item = &'a str>) -> usize {
        let mut skipped = 0;
        for p in permissions {
            let Some((namespace, role)) = p.split_once(':').filter(|(ns, _)| !ns.is_empty()) else {
                skipped += 1;
                continue;
            };
            let role = Roles::parse(role);
            if namespace == SYSTEM_NAMESPACE {
                self.system = self.system.union(role);
            } else {
                let held = self.namespaces.entry(namespace.to_string()).or_default();
                *held = held.union(role);
            }
        }
        skipped
    }

    /// The roles that count for a call of `class` on `namespace` (the request's field, empty
    /// when it has none): the system roles, plus the namespace's for a namespace call.
    pub fn roles_for(&self, class: MethodClass, namespace: &str) -> Roles {
        match class.scope {
            Scope::Cluster => self.system,
            Scope::Namespace => self
                .system
                .union(self.namespaces.get(namespace).copied().unwrap_or_default()),
        }
    }

    /// Temporal's default authorizer: the roles that count allow the call's access.
    pub fn allow(&self, class: MethodClass, namespace: &str) -> bool {
        class.access == Access::Open || self.roles_for(class, namespace).allow(class.access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::{OPERATOR_SERVICE, WORKFLOW_SERVICE, classify};

    fn claims(permissions: &[&str]) -> Claims {
        let mut c = Claims::default();
        c.add_permissions(permissions.iter().copied());
        c
    }

    fn allowed(c: &Claims, method: &str, namespace: &str) -> bool {
        let service = if method.contains("SearchAttributes") && method != "GetSearchAttributes"
            || method == "DeleteNamespace"
            || method == "ListClusters"
        {
            OPERATOR_SERVICE
        } else {
            WORKFLOW_SERVICE
        };
        c.allow(classify(service, method).expect("classified"), namespace)
    }

    #[test]
    fn permissions_map_to_roles_like_temporals_claim_mapper() {
        let c = claims(&[
            "a:read",
            "a:WORKER",
            "b:write",
            "temporal-system:read",
            "no-colon",
            "c:superuser",
        ]);
        assert_eq!(c.namespaces["a"], Roles::READ.union(Roles::WORKER));
        assert_eq!(c.namespaces["b"], Roles::WRITE);
        assert_eq!(c.namespaces["c"], Roles::NONE);
        assert_eq!(c.system, Roles::READ);
        let mut d = Claims::default();
        assert_eq!(d.add_permissions(["x", "y:read", ":admin"]), 2);
        assert!(!d.namespaces.contains_key(""));
        // A namespace name may itself hold a colon? No: the first colon splits, as in Temporal.
        assert_eq!(claims(&["a:b:read"]).namespaces["a"], Roles::NONE);
    }

    #[test]
    fn each_role_allows_exactly_its_calls() {
        let read = claims(&["a:read"]);
        assert!(allowed(&read, "DescribeWorkflowExecution", "a"));
        assert!(allowed(&read, "ListWorkflowExecutions", "a"));
        assert!(allowed(&read, "DescribeNamespace", "a"));
        assert!(!allowed(&read, "StartWorkflowExecution", "a"));
        assert!(!allowed(&read, "PollWorkflowTaskQueue", "a"));
        assert!(!allowed(&read, "DescribeWorkflowExecution", "b"));

        let worker = claims(&["a:worker"]);
        assert!(allowed(&worker, "PollWorkflowTaskQueue", "a"));
        assert!(allowed(&worker, "RespondActivityTaskCompleted", "a"));
        assert!(allowed(&worker, "GetWorkflowExecutionHistory", "a"));
        assert!(!allowed(&worker, "StartWorkflowExecution", "a"));
        assert!(!allowed(&worker, "SignalWorkflowExecution", "a"));
        assert!(!allowed(&worker, "PollWorkflowTaskQueue", "b"));

        let write = claims(&["a:write"]);
        assert!(allowed(&write, "StartWorkflowExecution", "a"));
        assert!(allowed(&write, "SignalWithStartWorkflowExecution", "a"));
        assert!(allowed(&write, "PollActivityTaskQueue", "a"));
        assert!(allowed(&write, "CountWorkflowExecutions", "a"));
        assert!(!allowed(&write, "UpdateNamespace", "a"));
        assert!(!allowed(&write, "AddSearchAttributes", "a"));
        assert!(!allowed(&write, "StartWorkflowExecution", "b"));

        let admin = claims(&["a:admin"]);
        assert!(allowed(&admin, "UpdateNamespace", "a"));
        assert!(allowed(&admin, "RegisterNamespace", "a"));
        assert!(allowed(&admin, "AddSearchAttributes", "a"));
        assert!(allowed(&admin, "StartWorkflowExecution", "a"));
        assert!(!allowed(&admin, "RegisterNamespace", "b"));
        // Cluster calls need system roles, whatever the namespace roles.
        assert!(!allowed(&admin, "ListNamespaces", ""));
        assert!(!allowed(&admin, "ListClusters", ""));
    }

    #[test]
    fn system_roles_hold_everywhere() {
        let system_admin = claims(&["temporal-system:admin"]);
        for m in [
            "RegisterNamespace",
            "StartWorkflowExecution",
            "ListClusters",
        ] {
            assert!(allowed(&system_admin, m, "anything"), "{m}");
        }
        let system_read = claims(&["temporal-system:read"]);
        assert!(allowed(&system_read, "ListNamespaces", ""));
        assert!(allowed(&system_read, "DescribeWorkflowExecution", "x"));
        assert!(!allowed(&system_read, "StartWorkflowExecution", "x"));
        // No roles at all: only the open call.
        let nobody = Claims::default();
        assert!(allowed(&nobody, "GetSystemInfo", ""));
        assert!(!allowed(&nobody, "GetClusterInfo", ""));
        assert!(!allowed(&nobody, "DescribeNamespace", "a"));
    }
}
