//! Request rate limits: per namespace (so one noisy tenant cannot starve the others) and per
//! frontend node, as Temporal's `frontend.namespaceRPS` and `frontend.rps`. A request over a
//! limit is refused at once with RESOURCE_EXHAUSTED and a `ResourceExhaustedFailure` (cause
//! RPS_LIMIT), which the SDKs retry with backoff. Long polls are not counted: they are few
//! and each waits up to a minute.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use temper_proto::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use tonic::Status;

/// Limits in requests per second; 0 means no limit. Bursts of up to one second's worth are
/// allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Every namespace not in `per_namespace`.
    pub namespace_rps: u32,
    /// Namespaces with their own limit, by name.
    pub per_namespace: BTreeMap<String, u32>,
    /// All requests to this frontend node together.
    pub host_rps: u32,
    /// Visibility queries (list, scan and count of workflows and schedules) of each
    /// namespace, on top of `namespace_rps` (Temporal's `frontend.namespaceRPS.visibility`).
    pub namespace_visibility_rps: u32,
}

pub struct RateLimits {
    default: Option<DefaultKeyedRateLimiter<String>>,
    overrides: BTreeMap<String, Option<DefaultDirectRateLimiter>>,
    host: Option<DefaultDirectRateLimiter>,
    visibility: Option<DefaultKeyedRateLimiter<String>>,
}

fn quota(rps: u32) -> Option<Quota> {
    NonZeroU32::new(rps).map(|n| Quota::per_second(n).allow_burst(n))
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            default: quota(config.namespace_rps).map(RateLimiter::keyed),
            overrides: config
                .per_namespace
                .iter()
                .map(|(ns, rps)| (ns.clone(), quota(*rps).map(RateLimiter::direct)))
                .collect(),
            host: quota(config.host_rps).map(RateLimiter::direct),
            visibility: quota(config.namespace_visibility_rps).map(RateLimiter::keyed),
        }
    }

    /// Admit one request of `namespace`, or refuse it as Temporal does.
    pub fn admit(&self, namespace: &str) -> Result<(), Status> {
        self.admit_host()?;
        self.admit_namespace(namespace)
    }

    /// The node's own limit, checked before anything else about a request.
    pub fn admit_host(&self) -> Result<(), Status> {
        if let Some(host) = &self.host
            && host.check().is_err()
        {
            return Err(exhausted(
                "service rate limit exceeded",
                ResourceExhaustedScope::System,
            ));
        }
        Ok(())
    }

    /// The limit of `namespace`. Call it only for a namespace that exists: the limiter
    /// keeps a bucket for every name it is asked about, for good.
    pub fn admit_namespace(&self, namespace: &str) -> Result<(), Status> {
        let admitted = match self.overrides.get(namespace) {
            Some(Some(limiter)) => limiter.check().is_ok(),
            Some(None) => true,
            None => match &self.default {
                Some(limiter) => limiter.check_key(&namespace.to_owned()).is_ok(),
                None => true,
            },
        };
        if admitted {
            Ok(())
        } else {
            Err(exhausted(
                "namespace rate limit exceeded",
                ResourceExhaustedScope::Namespace,
            ))
        }
    }
}

impl RateLimits {
    /// How many namespaces the keyed limiters keep a bucket for.
    pub fn tracked_namespaces(&self) -> usize {
        self.default.as_ref().map_or(0, |l| l.len())
            + self.visibility.as_ref().map_or(0, |l| l.len())
    }

    /// Admit one visibility query of `namespace` (which [`Self::admit`] counts too). Like
    /// [`Self::admit_namespace`], only for a namespace that exists.
    pub fn admit_visibility(&self, namespace: &str) -> Result<(), Status> {
        match &self.visibility {
            Some(limiter) if limiter.check_key(&namespace.to_owned()).is_err() => Err(exhausted(
                "namespace visibility rate limit exceeded",
                ResourceExhaustedScope::Namespace,
            )),
            _ => Ok(()),
        }
    }
}

fn exhausted(message: &str, scope: ResourceExhaustedScope) -> Status {
    temper_client::status::resource_exhausted(message, ResourceExhaustedCause::RpsLimit, scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::errordetails::v1::ResourceExhaustedFailure;
    use tonic::Code;

    fn admitted(l: &RateLimits, ns: &str, n: usize) -> usize {
        (0..n).filter(|_| l.admit(ns).is_ok()).count()
    }

    #[test]
    fn namespaces_have_separate_buckets() {
        let l = RateLimits::new(&RateLimitConfig {
            namespace_rps: 5,
            per_namespace: [("big".to_string(), 50), ("free".to_string(), 0)].into(),
            ..Default::default()
        });
        assert_eq!(admitted(&l, "a", 20), 5, "a burst of one second's worth");
        assert_eq!(
            admitted(&l, "b", 20),
            5,
            "another namespace is not starved by a"
        );
        assert_eq!(admitted(&l, "big", 100), 50);
        assert_eq!(admitted(&l, "free", 100), 100, "0 means unlimited");
        let e = l.admit("a").expect_err("over the limit");
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(e.message(), "namespace rate limit exceeded");
        let f = temper_client::status::detail::<ResourceExhaustedFailure>(&e).expect("failure");
        assert_eq!(f.cause, ResourceExhaustedCause::RpsLimit as i32);
        assert_eq!(f.scope, ResourceExhaustedScope::Namespace as i32);
    }

    #[test]
    fn the_host_limit_covers_every_namespace() {
        let l = RateLimits::new(&RateLimitConfig {
            host_rps: 4,
            ..Default::default()
        });
        let n = admitted(&l, "a", 3) + admitted(&l, "b", 3);
        assert_eq!(n, 4);
        assert_eq!(
            l.admit("c").expect_err("host limit").message(),
            "service rate limit exceeded"
        );
        assert_eq!(
            admitted(&RateLimits::new(&RateLimitConfig::default()), "x", 1000),
            1000
        );
    }

    #[test]
    fn visibility_queries_have_their_own_bucket_per_namespace() {
        let l = RateLimits::new(&RateLimitConfig {
            namespace_visibility_rps: 3,
            ..Default::default()
        });
        let queries = |ns: &str| (0..10).filter(|_| l.admit_visibility(ns).is_ok()).count();
        assert_eq!(queries("a"), 3);
        assert_eq!(queries("b"), 3, "another namespace has its own");
        assert_eq!(
            admitted(&l, "a", 50),
            50,
            "other calls are not limited by it"
        );
        let e = l.admit_visibility("a").expect_err("over the limit");
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(e.message(), "namespace visibility rate limit exceeded");
        let unlimited = RateLimits::new(&RateLimitConfig::default());
        assert!((0..1000).all(|_| unlimited.admit_visibility("a").is_ok()));
    }
}
