//! Fair admission: a node-wide bound on the requests doing history and matching work at
//! once, shared fairly between namespaces when it is reached.
//!
//! Rate limits refuse a namespace's excess, but under them a namespace that sends more than
//! the node can serve still fills every queue behind the frontend (history shards, the
//! store's writer), and every other namespace waits behind its backlog. Here at most
//! `max_inflight` requests run at once; the others wait in one queue per namespace, and a
//! freed place goes to the namespaces in turn (`weight` places per turn each), so a quiet
//! namespace waits for about one place to free, never for a flood's backlog. A namespace
//! with `max_queued` requests waiting gets RESOURCE_EXHAUSTED (cause CONCURRENT_LIMIT, scope
//! NAMESPACE) for the next, which the SDKs retry with backoff.
//!
//! Which requests take a place is decided by method ([`admitted_method`]): the calls that
//! bring new work and answer once it is written. Calls that wait (long polls, updates,
//! history long polls, queries) would hold a place while idle, and workers' completions
//! finish work already admitted; neither is counted.
//!
//! The place is taken when the handler resolves the request's namespace (the frontend's
//! `namespace()`), and given back when the request ends: [`AdmissionScope`] runs each call
//! of an admitted method in a task-local slot that holds its [`Place`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use temper_proto::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use tokio::sync::oneshot;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// Requests turned away because their namespace had `max_queued` waiting, by namespace.
pub const REJECTED: &str = "temper_frontend_admission_rejected_total";
/// Requests that waited for a place, by namespace.
pub const WAITED: &str = "temper_frontend_admission_waited_total";

/// The bound and the shares; `max_inflight` 0 turns admission off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Requests doing work at once on this node; 0: no bound.
    pub max_inflight: u32,
    /// Requests of one namespace waiting for a place; over it, RESOURCE_EXHAUSTED.
    pub max_queued: u32,
    /// Places a namespace gets per turn (default 1), by name.
    pub weights: BTreeMap<String, u32>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_inflight: 0,
            max_queued: 1000,
            weights: BTreeMap::new(),
        }
    }
}

/// The methods whose calls take a place: the ones that bring new work (starts, signals,
/// cancels, terminations, resets, deletes) or read a run through history (describe), and
/// answer as soon as that is done. Workers' task completions and heartbeats do not: they
/// finish work already admitted, and holding them back would only make a flooding
/// namespace's tasks time out and be done again (more work, not less).
pub fn admitted_method(method: &str) -> bool {
    matches!(
        method,
        "StartWorkflowExecution"
            | "SignalWithStartWorkflowExecution"
            | "SignalWorkflowExecution"
            | "RequestCancelWorkflowExecution"
            | "TerminateWorkflowExecution"
            | "ResetWorkflowExecution"
            | "DeleteWorkflowExecution"
            | "DescribeWorkflowExecution"
    )
}

pub struct Admission {
    max_inflight: usize,
    max_queued: usize,
    weights: BTreeMap<String, u32>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    inflight: usize,
    /// Waiters by namespace, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Namespaces with waiters, in turn order, with the places left in the current turn of
    /// the first.
    turns: VecDeque<String>,
    left_in_turn: u32,
}

/// A place: given back when dropped (to the next waiter in turn, if any).
pub struct Place {
    admission: Arc<Admission>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.admission.release();
    }
}

impl Admission {
    /// `None` when `config` turns admission off.
    pub fn new(config: &AdmissionConfig) -> Option<Arc<Self>> {
        (config.max_inflight > 0).then(|| {
            Arc::new(Self {
                max_inflight: config.max_inflight as usize,
                max_queued: config.max_queued.max(1) as usize,
                weights: config.weights.clone(),
                state: Mutex::new(State::default()),
            })
        })
    }

    fn weight(&self, namespace: &str) -> u32 {
        self.weights.get(namespace).copied().unwrap_or(1).max(1)
    }

    /// A place for a request of `namespace`: at once while fewer than `max_inflight` run,
    /// else when its turn comes.
    pub async fn enter(self: &Arc<Self>, namespace: &str) -> Result<Place, Status> {
        let rx = {
            let mut s = self.state.lock().expect("admission lock");
            if s.inflight < self.max_inflight && s.turns.is_empty() {
                s.inflight += 1;
                return Ok(self.place());
            }
            let queue = s.waiting.entry(namespace.to_owned()).or_default();
            if queue.len() >= self.max_queued {
                metrics::counter!(REJECTED, "namespace" => namespace.to_owned()).increment(1);
                return Err(temper_client::status::resource_exhausted(
                    "namespace concurrent request limit exceeded",
                    ResourceExhaustedCause::ConcurrentLimit,
                    ResourceExhaustedScope::Namespace,
                ));
            }
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            if queue.len() == 1 {
                if s.turns.is_empty() {
                    s.left_in_turn = self.weight(namespace);
                }
                s.turns.push_back(namespace.to_owned());
            }
            rx
        };
        metrics::counter!(WAITED, "namespace" => namespace.to_owned()).increment(1);
        let mut waiter = Waiter {
            admission: self.clone(),
            rx: Some(rx),
        };
        let granted = waiter.rx.as_mut().expect("set above").await.is_ok();
        waiter.rx = None;
        if granted {
            Ok(self.place())
        } else {
            // Only if the admission were dropped with waiters, which it never is.
            Err(Status::unavailable("the frontend is shutting down"))
        }
    }

    fn place(self: &Arc<Self>) -> Place {
        Place {
            admission: self.clone(),
        }
    }

    /// A place is free: hand it to the next waiter in turn, or count it free.
    fn release(&self) {
        let mut s = self.state.lock().expect("admission lock");
        while let Some(namespace) = s.turns.front().cloned() {
            let queue = s.waiting.get_mut(&namespace).expect("a turn has waiters");
            let tx = queue.pop_front().expect("a turn has waiters");
            let more = !queue.is_empty();
            if !more {
                s.waiting.remove(&namespace);
            }
            s.left_in_turn = s.left_in_turn.saturating_sub(1);
            if !more || s.left_in_turn == 0 {
                s.turns.pop_front();
                if more {
                    s.turns.push_back(namespace);
                }
                if let Some(next) = s.turns.front() {
                    s.left_in_turn = self.weight(next);
                }
            }
            if tx.send(()).is_ok() {
                return; // the place passes to that waiter
            }
            // That request went away while waiting; the next one gets the place.
        }
        s.inflight -= 1;
    }
}

/// A request waiting for a place. Dropped before it got one (the caller went away), it
/// leaves the queue; dropped just after one was handed to it, it gives the place back.
struct Waiter {
    admission: Arc<Admission>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.admission.release();
            }
            // A closed sender still in its queue is skipped by `release`.
        }
    }
}

tokio::task_local! {
    static SLOT: RefCell<Option<Place>>;
}

/// Take a place for the request being served, if it is of an admitted method and has none
/// yet. Outside [`AdmissionScope`] (methods that are not admitted, calls made in-process)
/// nothing is taken.
pub(crate) async fn admit(admission: &Arc<Admission>, namespace: &str) -> Result<(), Status> {
    let needed = SLOT
        .try_with(|slot| slot.borrow().is_none())
        .unwrap_or(false);
    if !needed {
        return Ok(());
    }
    let place = admission.enter(namespace).await?;
    let _ = SLOT.try_with(|slot| *slot.borrow_mut() = Some(place));
    Ok(())
}

/// A gRPC server `S` whose calls of admitted methods hold their place until they end.
#[derive(Debug, Clone)]
pub struct AdmissionScope<S> {
    inner: S,
}

impl<S> AdmissionScope<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for AdmissionScope<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for AdmissionScope<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
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
        let admitted = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .is_some_and(admitted_method);
        let fut = self.inner.call(req);
        if admitted {
            Box::pin(SLOT.scope(RefCell::new(None), fut))
        } else {
            Box::pin(fut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(max_inflight: u32, max_queued: u32, weights: &[(&str, u32)]) -> Arc<Admission> {
        Admission::new(&AdmissionConfig {
            max_inflight,
            max_queued,
            weights: weights.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
        })
        .expect("on")
    }

    #[test]
    fn zero_turns_it_off() {
        assert!(Admission::new(&AdmissionConfig::default()).is_none());
    }

    /// Each waiter records its namespace when it gets a place and holds it until told.
    async fn order_of_grants(a: &Arc<Admission>, requests: &[&'static str]) -> Vec<&'static str> {
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for &ns in requests {
            let a = a.clone();
            let done = done_tx.clone();
            handles.push(tokio::spawn(async move {
                let place = a.enter(ns).await.expect("queued");
                done.send(ns).expect("open");
                // Hold it a moment so the next grant comes from this release.
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(place);
            }));
            // Queue in a known order.
            tokio::task::yield_now().await;
        }
        drop(done_tx);
        let mut order = Vec::new();
        while let Some(ns) = done_rx.recv().await {
            order.push(ns);
        }
        for h in handles {
            h.await.expect("task");
        }
        order
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_quiet_namespace_does_not_wait_behind_a_flood() {
        let a = admission(1, 1000, &[]);
        let blocker = a.enter("x").await.expect("free");
        let mut requests = vec!["flood"; 20];
        requests.push("quiet");
        let a2 = a.clone();
        let order = tokio::spawn(async move { order_of_grants(&a2, &requests).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(blocker);
        let order = order.await.expect("task");
        let quiet_at = order.iter().position(|n| *n == "quiet").expect("granted");
        assert!(
            quiet_at <= 1,
            "the quiet namespace waited behind {quiet_at} of the flood: {order:?}"
        );
        assert_eq!(order.len(), 21);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn weights_give_places_in_proportion() {
        let a = admission(1, 1000, &[("heavy", 3)]);
        let blocker = a.enter("x").await.expect("free");
        let mut requests = Vec::new();
        for _ in 0..30 {
            requests.push("heavy");
            requests.push("light");
        }
        let a2 = a.clone();
        let order = tokio::spawn(async move { order_of_grants(&a2, &requests).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(blocker);
        let order = order.await.expect("task");
        // While both wait, heavy gets three places for each of light's.
        let first = &order[..20];
        let heavy = first.iter().filter(|n| **n == "heavy").count();
        assert!(
            (14..=16).contains(&heavy),
            "heavy got {heavy} of 20: {order:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_refuses_with_resource_exhausted() {
        let a = admission(1, 2, &[]);
        let _held = a.enter("n").await.expect("free");
        let w1 = tokio::spawn({
            let a = a.clone();
            async move { a.enter("n").await.map(drop) }
        });
        let w2 = tokio::spawn({
            let a = a.clone();
            async move { a.enter("n").await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Err(refused) = a.enter("n").await else {
            panic!("a third waiter was queued past max_queued = 2");
        };
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // Another namespace still queues.
        let other = tokio::spawn({
            let a = a.clone();
            async move { a.enter("m").await.map(drop) }
        });
        drop(_held);
        for w in [w1, w2, other] {
            w.await.expect("task").expect("granted in the end");
        }
        assert_eq!(a.state.lock().expect("lock").inflight, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_that_goes_away_gives_its_turn_on() {
        let a = admission(1, 10, &[]);
        let held = a.enter("n").await.expect("free");
        let gone = tokio::spawn({
            let a = a.clone();
            async move { a.enter("n").await.map(drop) }
        });
        let stays = tokio::spawn({
            let a = a.clone();
            async move { a.enter("n").await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), stays)
            .await
            .expect("the remaining waiter got the place")
            .expect("task")
            .expect("granted");
        let s = a.state.lock().expect("lock");
        assert_eq!(s.inflight, 0, "every place came back");
        assert!(s.turns.is_empty() && s.waiting.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn places_are_bounded() {
        let a = admission(3, 100, &[]);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (a, running, most) = (a.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let ns = if i % 2 == 0 { "a" } else { "b" };
                let _p = a.enter(ns).await.expect("queued");
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(a.state.lock().expect("lock").inflight, 0);
    }

    #[test]
    fn waiting_calls_are_not_admitted() {
        for m in [
            "PollWorkflowTaskQueue",
            "UpdateWorkflowExecution",
            "QueryWorkflow",
        ] {
            assert!(!admitted_method(m), "{m}");
        }
        assert!(admitted_method("StartWorkflowExecution"));
    }
}
