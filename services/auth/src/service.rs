//! The gate in front of WorkflowService and OperatorService: every call is authenticated
//! (bearer token, or a client certificate the config maps to permissions), classified, and
//! allowed or refused by the caller's roles in the namespace the request names, before the
//! service sees it. Internode peers (a certificate of the internode CA) pass.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

use crate::claims::Claims;
use crate::error::CredentialError;
use crate::methods::{Access, MethodClass, Scope, api_method, classify};
use crate::{Auth, request};

/// The counter of authorization decisions: `result` (`allowed`, `denied`,
/// `unauthenticated`), `class` (the call's access class) and `auth` (`jwt`, `mtls`,
/// `internode`, `none`).
pub const REQUESTS: &str = "temper_auth_requests_total";

/// Wraps a public service; with `auth: None` (auth off) every call passes untouched.
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    auth: Option<Arc<Auth>>,
}

impl<S> Authorize<S> {
    pub fn new(inner: S, auth: Option<Arc<Auth>>) -> Self {
        Self { inner, auth }
    }
}

impl<S: NamedService> NamedService for Authorize<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Authorize<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let Some(auth) = self.auth.clone() else {
            return Box::pin(self.inner.call(req));
        };
        // The service readied by poll_ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match auth.check(req).await {
                Ok(req) => inner.call(req).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// Who is calling and how they proved it, for the audit line.
struct Caller {
    claims: Claims,
}

impl Auth {
    /// Let `req` through (with its body restored if it had to be read) or say why not.
    async fn check(&self, req: http::Request<Body>) -> Result<http::Request<Body>, tonic::Status> {
        let path = req.uri().path().to_string();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", ""));
        // A method the table does not know needs the cluster admin, as in Temporal.
        let class = classify(service, method).unwrap_or(MethodClass {
            scope: Scope::Cluster,
            access: Access::Admin,
        });
        let peer = req.extensions().get::<temper_tls::PeerInfo>().cloned();
        if class.access == Access::Open {
            self.record("allowed", class, "none");
            return Ok(req);
        }
        if peer.as_ref().is_some_and(|p| p.internode) {
            self.record("allowed", class, "internode");
            return Ok(req);
        }
        let cert_subject = peer.as_ref().and_then(crate::cert::subject);
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        let caller = match self.authenticate(header, cert_subject.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                self.record("unauthenticated", class, "none");
                self.audit(
                    cert_subject.as_ref().map_or("", |s| s.dn.as_str()),
                    "none",
                    method,
                    "",
                    "unauthenticated",
                    &e.to_string(),
                );
                return Err(tonic::Status::unauthenticated(e.to_string()));
            }
        };
        let auth_type = caller.claims.auth_type;
        // The request matters only if the cluster-wide roles do not already allow the call
        // (and, for a workflow task's commands, calls in other namespaces).
        let commands_elsewhere = method == CROSS_NAMESPACE_METHOD;
        let needs_body = class.scope == Scope::Namespace
            && (!caller.claims.system.allow(class.access)
                || commands_elsewhere && !caller.claims.system.allow(Access::Write));
        let (namespace, message, req) = if needs_body {
            match self.namespace_of(req, service, method).await {
                Ok(found) => found,
                Err(status) => {
                    self.record("denied", class, auth_type);
                    return Err(status);
                }
            }
        } else {
            (String::new(), Vec::new(), req)
        };
        let mut allowed = caller.claims.allow(class, &namespace);
        if allowed && commands_elsewhere && needs_body {
            allowed = match other_namespace_calls(&message, &namespace) {
                Ok(calls) => calls.iter().all(|(ns, api)| {
                    classify(crate::methods::WORKFLOW_SERVICE, api)
                        .is_some_and(|c| caller.claims.allow(c, ns))
                }),
                Err(e) => return Err(tonic::Status::invalid_argument(e.to_string())),
            };
        }
        let result = if allowed { "allowed" } else { "denied" };
        self.record(result, class, auth_type);
        self.audit(
            &caller.claims.subject,
            auth_type,
            method,
            &namespace,
            result,
            caller.claims.roles_for(class, &namespace).strongest(),
        );
        if allowed {
            Ok(req)
        } else {
            Err(permission_denied())
        }
    }

    async fn authenticate(
        &self,
        header: Option<Result<String, http::header::ToStrError>>,
        cert: Option<&crate::cert::Subject>,
    ) -> Result<Caller, CredentialError> {
        if let Some(value) = header {
            let value = value.map_err(|_| CredentialError::NotBearer)?;
            let verifier = self.tokens.as_ref().ok_or_else(|| {
                CredentialError::Invalid(
                    "this server takes no tokens (no auth.jwks_url or auth.key_file)".into(),
                )
            })?;
            let claims = verifier.claims_of_header(&value).await?;
            return Ok(Caller { claims });
        }
        if let Some(subject) = cert
            && let Some(permissions) = self.cert_permissions.get(&subject.common_name)
        {
            let mut claims = Claims {
                subject: subject.dn.clone(),
                auth_type: "mtls",
                ..Claims::default()
            };
            claims.add_permissions(permissions.iter().map(String::as_str));
            return Ok(Caller { claims });
        }
        Err(CredentialError::Missing)
    }

    /// Read the body to find the namespace, and put it back.
    async fn namespace_of(
        &self,
        req: http::Request<Body>,
        service: &str,
        method: &str,
    ) -> Result<(String, Vec<u8>, http::Request<Body>), tonic::Status> {
        let Some(field) = api_method(service, method).and_then(|m| m.namespace_field) else {
            return Ok((String::new(), Vec::new(), req));
        };
        let encoding = req
            .headers()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (parts, body) = req.into_parts();
        let limit = self.max_message_bytes;
        let bytes: Bytes = Limited::new(body, limit + 5)
            .collect()
            .await
            .map_err(|e| tonic::Status::invalid_argument(format!("reading the request: {e}")))?
            .to_bytes();
        let message = request::message(&bytes, encoding.as_deref(), limit)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let namespace = request::namespace(&message, field)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        Ok((
            namespace,
            message,
            http::Request::from_parts(parts, Body::new(Full::new(bytes))),
        ))
    }

    fn record(&self, result: &'static str, class: MethodClass, auth_type: &'static str) {
        metrics::counter!(REQUESTS, "result" => result, "class" => class.access.label(), "auth" => auth_type)
            .increment(1);
    }

    fn audit(
        &self,
        subject: &str,
        auth_type: &str,
        method: &str,
        namespace: &str,
        decision: &str,
        detail: &str,
    ) {
        if self.audit_log {
            tracing::info!(
                target: "temper::audit",
                subject,
                auth = auth_type,
                method,
                namespace,
                decision,
                detail,
                "authorization"
            );
        }
    }
}

/// The one call whose request acts on other namespaces: a workflow task's commands may
/// start a child, signal or cancel a workflow in another namespace.
const CROSS_NAMESPACE_METHOD: &str = "RespondWorkflowTaskCompleted";

/// The calls a completed workflow task's commands make in namespaces other than `own`, as
/// (namespace, the WorkflowService method that does the same), as Temporal checks them.
// The target namespace fields are deprecated in the API (Temporal may drop cross-namespace
// commands) but still honoured, by Temporal and by temper's history service.
#[allow(deprecated)]
fn other_namespace_calls(
    message: &[u8],
    own: &str,
) -> Result<Vec<(String, &'static str)>, request::RequestError> {
    use prost::Message;
    use temper_proto::temporal::api::command::v1::command::Attributes;
    use temper_proto::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;
    let req = RespondWorkflowTaskCompletedRequest::decode(message)
        .map_err(|_| request::RequestError::Protobuf)?;
    let mut calls: Vec<(String, &'static str)> = Vec::new();
    for command in req.commands {
        let (namespace, api) = match command.attributes {
            Some(Attributes::StartChildWorkflowExecutionCommandAttributes(a)) => {
                (a.namespace, "StartWorkflowExecution")
            }
            Some(Attributes::SignalExternalWorkflowExecutionCommandAttributes(a)) => {
                (a.namespace, "SignalWorkflowExecution")
            }
            Some(Attributes::RequestCancelExternalWorkflowExecutionCommandAttributes(a)) => {
                (a.namespace, "RequestCancelWorkflowExecution")
            }
            _ => continue,
        };
        if !namespace.is_empty() && namespace != own && !calls.contains(&(namespace.clone(), api)) {
            calls.push((namespace, api));
        }
    }
    Ok(calls)
}

/// Temporal's answer to a call the caller's roles do not allow.
pub fn permission_denied() -> tonic::Status {
    use temper_proto::temporal::api::errordetails::v1::PermissionDeniedFailure;
    temper_client::status::status_with_details(
        tonic::Code::PermissionDenied,
        "Request unauthorized.",
        &PermissionDeniedFailure {
            reason: String::new(),
        },
    )
}
