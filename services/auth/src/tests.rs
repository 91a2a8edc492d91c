//! The gate as a whole: credentials, classes and namespaces in, gRPC status out.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use prost::Message;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};

use crate::testkeys::{TestKey, claims};
use crate::{Auth, AuthSettings, Authorize, KeySource, TokenRules};

const NOW: u64 = 1_800_000_000;

/// Answers every call with OK and remembers the body it got.
#[derive(Clone, Default)]
struct Echo {
    bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "temporal.api.workflowservice.v1.WorkflowService";
}

impl Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let bodies = self.bodies.clone();
        Box::pin(async move {
            use http_body_util::BodyExt;
            let b = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes().to_vec())
                .unwrap_or_default();
            bodies.lock().expect("lock").push(b);
            Ok(tonic::Status::ok("").into_http())
        })
    }
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

fn start_request(namespace: &str) -> Vec<u8> {
    frame(
        &StartWorkflowExecutionRequest {
            namespace: namespace.into(),
            workflow_id: "wf".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

/// The gate with JWT auth (tokens signed by `key`) and `cert_permissions`, in front of an
/// `Echo`.
struct Gate {
    key: TestKey,
    service: Authorize<Echo>,
    echo: Echo,
}

impl Gate {
    async fn start(cert_permissions: HashMap<String, Vec<String>>) -> Self {
        let key = TestKey::es256("k");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        std::fs::write(&path, &key.public_pem).expect("write");
        let auth = Auth::start(
            AuthSettings {
                keys: Some(KeySource::File(path)),
                jwks_ca_file: None,
                refresh_interval: Duration::from_secs(3600),
                rules: TokenRules::default(),
                cert_permissions,
                audit_log: true,
                max_message_bytes: 1 << 20,
            },
            Arc::new(temper_types::ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW),
            )),
        )
        .await
        .expect("starts");
        let echo = Echo::default();
        Self {
            key,
            service: Authorize::new(echo.clone(), Some(auth)),
            echo,
        }
    }

    /// A token of `sub` with `permissions`, valid for another minute.
    fn token(&self, sub: &str, permissions: &[&str]) -> String {
        self.key.sign(&claims(sub, permissions, NOW + 60))
    }

    /// `method` with `token`, if any.
    async fn call(
        &mut self,
        method: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (tonic::Code, String) {
        call(&mut self.service, method, token, body, None).await
    }

    /// `method` from a TLS peer, without a token.
    async fn call_from(
        &mut self,
        peer: temper_tls::PeerInfo,
        method: &str,
        body: Vec<u8>,
    ) -> (tonic::Code, String) {
        call(&mut self.service, method, None, body, Some(peer)).await
    }
}

async fn call(
    gate: &mut Authorize<Echo>,
    method: &str,
    token: Option<&str>,
    body: Vec<u8>,
    peer: Option<temper_tls::PeerInfo>,
) -> (tonic::Code, String) {
    let mut req = http::Request::post(format!(
        "/temporal.api.workflowservice.v1.WorkflowService/{method}"
    ))
    .header("content-type", "application/grpc");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req
        .body(Body::new(http_body_util::Full::new(bytes::Bytes::from(
            body,
        ))))
        .expect("request");
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    let resp = gate.call(req).await.expect("infallible");
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from);
    let message = resp
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace("%20", " ");
    (code, message)
}

#[tokio::test]
async fn calls_pass_or_stop_by_role_in_the_requests_namespace() {
    let mut g = Gate::start(HashMap::new()).await;
    let writer = g.token("w", &["a:write"]);
    let reader = g.token("r", &["a:read"]);
    let (code, _) = g
        .call("StartWorkflowExecution", Some(&writer), start_request("a"))
        .await;
    assert_eq!(code, tonic::Code::Ok);
    // The service got the body it would have got without the gate.
    assert_eq!(
        g.echo.bodies.lock().expect("lock").last(),
        Some(&start_request("a"))
    );
    let (code, message) = g
        .call("StartWorkflowExecution", Some(&writer), start_request("b"))
        .await;
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::PermissionDenied, "Request unauthorized.")
    );
    let (code, _) = g
        .call("StartWorkflowExecution", Some(&reader), start_request("a"))
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = g
        .call(
            "DescribeWorkflowExecution",
            Some(&reader),
            start_request("a"),
        )
        .await;
    assert_eq!(code, tonic::Code::Ok);
    // Cluster calls need system roles.
    let (code, _) = g.call("ListNamespaces", Some(&writer), frame(&[])).await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let admin = g.token("root", &["temporal-system:admin"]);
    let (code, _) = g.call("ListNamespaces", Some(&admin), frame(&[])).await;
    assert_eq!(code, tonic::Code::Ok);
    // A method no table knows needs the cluster admin.
    let (code, _) = g.call("SomethingNew", Some(&writer), frame(&[])).await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    // A body that is not a gRPC message: refused, no panic.
    let (code, _) = g
        .call("StartWorkflowExecution", Some(&writer), vec![0, 0])
        .await;
    assert_eq!(code, tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn missing_bad_and_expired_credentials_are_unauthenticated() {
    let mut g = Gate::start(HashMap::new()).await;
    let (code, message) = g.call("DescribeNamespace", None, start_request("a")).await;
    assert_eq!(code, tonic::Code::Unauthenticated);
    assert!(message.contains("authorization"), "{message}");
    let expired = g.key.sign(&claims("r", &["a:read"], NOW - 1));
    let (code, message) = g
        .call("DescribeNamespace", Some(&expired), start_request("a"))
        .await;
    assert_eq!(code, tonic::Code::Unauthenticated);
    assert!(message.contains("expired"), "{message}");
    let (code, _) = g
        .call("DescribeNamespace", Some("nonsense"), start_request("a"))
        .await;
    assert_eq!(code, tonic::Code::Unauthenticated);
    // GetSystemInfo is open: SDKs call it before anything else.
    let (code, _) = g.call("GetSystemInfo", None, frame(&[])).await;
    assert_eq!(code, tonic::Code::Ok);
}

#[tokio::test]
async fn certificates_map_to_permissions_and_internode_peers_pass() {
    let mapped = HashMap::from([("worker-a".to_string(), vec!["a:worker".to_string()])]);
    let mut g = Gate::start(mapped).await;
    let cert = |cn: &str| {
        let kp = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![cn.into()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&kp).expect("cert").der().clone()
    };
    let peer = |cn: &str, internode: bool| temper_tls::PeerInfo {
        remote_addr: "127.0.0.1:1".parse().expect("addr"),
        internode,
        certs: Some(Arc::new(vec![cert(cn)])),
    };
    let (code, _) = g
        .call_from(
            peer("worker-a", false),
            "PollWorkflowTaskQueue",
            start_request("a"),
        )
        .await;
    assert_eq!(code, tonic::Code::Ok);
    let (code, _) = g
        .call_from(
            peer("worker-a", false),
            "StartWorkflowExecution",
            start_request("a"),
        )
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = g
        .call_from(
            peer("worker-a", false),
            "PollWorkflowTaskQueue",
            start_request("b"),
        )
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = g
        .call_from(
            peer("someone", false),
            "PollWorkflowTaskQueue",
            start_request("a"),
        )
        .await;
    assert_eq!(code, tonic::Code::Unauthenticated);
    let (code, _) = g
        .call_from(peer("node", true), "RegisterNamespace", start_request("x"))
        .await;
    assert_eq!(code, tonic::Code::Ok);
}

#[tokio::test]
async fn auth_off_passes_everything() {
    let echo = Echo::default();
    let mut g = Authorize::new(echo, None);
    let (code, _) = call(&mut g, "RegisterNamespace", None, start_request("x"), None).await;
    assert_eq!(code, tonic::Code::Ok);
}

#[tokio::test]
#[allow(deprecated)] // the commands' target namespace fields
async fn a_workflow_tasks_commands_in_another_namespace_need_roles_there() {
    use temper_proto::temporal::api::command::v1::{
        Command, SignalExternalWorkflowExecutionCommandAttributes,
        StartChildWorkflowExecutionCommandAttributes, command::Attributes,
    };
    use temper_proto::temporal::api::workflowservice::v1::RespondWorkflowTaskCompletedRequest;
    let mut g = Gate::start(HashMap::new()).await;
    let respond = |commands: Vec<Command>| {
        frame(
            &RespondWorkflowTaskCompletedRequest {
                namespace: "a".into(),
                task_token: b"t".to_vec(),
                commands,
                ..Default::default()
            }
            .encode_to_vec(),
        )
    };
    let child_in = |ns: &str| Command {
        attributes: Some(Attributes::StartChildWorkflowExecutionCommandAttributes(
            StartChildWorkflowExecutionCommandAttributes {
                namespace: ns.into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let signal_in = |ns: &str| Command {
        attributes: Some(
            Attributes::SignalExternalWorkflowExecutionCommandAttributes(
                SignalExternalWorkflowExecutionCommandAttributes {
                    namespace: ns.into(),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    };
    let worker_a = g.token("w", &["a:worker"]);
    let m = "RespondWorkflowTaskCompleted";
    let (code, _) = g
        .call(
            m,
            Some(&worker_a),
            respond(vec![child_in("a"), child_in("")]),
        )
        .await;
    assert_eq!(code, tonic::Code::Ok);
    let (code, _) = g
        .call(m, Some(&worker_a), respond(vec![child_in("b")]))
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let (code, _) = g
        .call(m, Some(&worker_a), respond(vec![signal_in("b")]))
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
    let both = g.token("w", &["a:worker", "b:write"]);
    let (code, _) = g
        .call(m, Some(&both), respond(vec![child_in("b"), signal_in("b")]))
        .await;
    assert_eq!(code, tonic::Code::Ok);
    let read_b = g.token("w", &["a:worker", "b:read"]);
    let (code, _) = g
        .call(m, Some(&read_b), respond(vec![signal_in("b")]))
        .await;
    assert_eq!(code, tonic::Code::PermissionDenied);
}
