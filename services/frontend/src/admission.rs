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
//! With overload control on ([`crate::overload`]), places are also paced: handed out no
//! faster than the rate the controller sets while the node is saturated, in the same turns.
//!
//! The place is taken when the handler resolves the request's namespace (the frontend's
//! `namespace()`), and given back when the request ends: [`AdmissionScope`] runs each call
//! of an admitted method in a task-local slot that holds its [`Place`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
// tokio's clock, so tests can pause it.
use tokio::time::Instant;

use temper_proto::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use tokio::sync::oneshot;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

use crate::overload::{self, Bucket};

/// Requests turned away because their namespace had `max_queued` waiting, by namespace.
pub const REJECTED: &str = "temper_frontend_admission_rejected_total";
/// Requests that waited for a place, by namespace.
pub const WAITED: &str = "temper_frontend_admission_waited_total";

/// The bound and the shares; `max_inflight` 0 with no `overload_target_lag` turns admission
/// off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Requests doing work at once on this node; 0: no bound.
    pub max_inflight: u32,
    /// Overload control: pace new work while the node's scheduling lag is above this
    /// ([`crate::overload`]). None: off.
    pub overload_target_lag: Option<Duration>,
    /// Requests of one namespace waiting for a place; over it, RESOURCE_EXHAUSTED.
    pub max_queued: u32,
    /// Places a namespace gets per turn (default 1), by name.
    pub weights: BTreeMap<String, u32>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_inflight: 0,
            overload_target_lag: None,
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

struct State {
    inflight: usize,
    /// Waiters by namespace, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Namespaces with waiters, in turn order, with the places left in the current turn of
    /// the first.
    turns: VecDeque<String>,
    left_in_turn: u32,
    /// The pace of new places (no rate unless overload control set one).
    bucket: Bucket,
    /// Places given since the overload controller last looked.
    admitted: u64,
    /// While paced: places given since the controller last looked, by namespace.
    counts: HashMap<String, u32>,
    /// While paced: the namespaces that took at least their share of the places in the last
    /// window. The others (a quiet namespace, a new one) are let in ahead of the queue.
    heavy: HashSet<String>,
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
    /// `None` when `config` turns admission off. With overload control, starts its probe
    /// (on the current runtime), which ends when the admission is dropped.
    pub fn new(config: &AdmissionConfig) -> Option<Arc<Self>> {
        let target = config.overload_target_lag.filter(|t| !t.is_zero());
        if config.max_inflight == 0 && target.is_none() {
            return None;
        }
        let admission = Arc::new(Self {
            max_inflight: match config.max_inflight {
                0 => usize::MAX,
                n => n as usize,
            },
            max_queued: config.max_queued.max(1) as usize,
            weights: config.weights.clone(),
            state: Mutex::new(State {
                inflight: 0,
                waiting: HashMap::new(),
                turns: VecDeque::new(),
                left_in_turn: 0,
                bucket: Bucket::unlimited(Instant::now()),
                admitted: 0,
                counts: HashMap::new(),
                heavy: HashSet::new(),
            }),
        });
        if let Some(target) = target {
            overload::spawn_probe(Arc::downgrade(&admission), target);
        }
        Some(admission)
    }

    fn weight(&self, namespace: &str) -> u32 {
        self.weights.get(namespace).copied().unwrap_or(1).max(1)
    }

    /// A place for a request of `namespace`: at once while fewer than `max_inflight` run,
    /// else when its turn comes.
    pub async fn enter(self: &Arc<Self>, namespace: &str) -> Result<Place, Status> {
        let rx = {
            let mut s = self.state.lock().expect("admission lock");
            let now = Instant::now();
            if s.inflight < self.max_inflight
                && (s.turns.is_empty() && s.bucket.try_take(now)
                    || self.ahead_of_the_queue(&mut s, namespace, now))
            {
                s.inflight += 1;
                s.admitted += 1;
                if s.bucket.rate().is_some() {
                    *s.counts.entry(namespace.to_owned()).or_default() += 1;
                }
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

    /// A place is free: hand it to the next waiter in turn (if the pace allows), or count it
    /// free.
    fn release(&self) {
        let mut s = self.state.lock().expect("admission lock");
        s.inflight -= 1;
        self.dispatch(&mut s, Instant::now());
    }

    /// While paced, a request of a namespace that took less than its share of the places in
    /// the last window and has none waiting goes ahead of the queue: it takes the next token
    /// now (the bucket may owe a few, paid back by the namespaces that wait), so a quiet
    /// namespace is not delayed by the pace a flood set.
    fn ahead_of_the_queue(&self, s: &mut State, namespace: &str, now: Instant) -> bool {
        s.bucket.rate().is_some()
            && !s.heavy.contains(namespace)
            && !s.waiting.contains_key(namespace)
            && s.bucket.take_owing(now)
    }

    /// Hand free places to waiters in turn, as far as the pace allows.
    fn dispatch(&self, s: &mut State, now: Instant) {
        while s.inflight < self.max_inflight && !s.turns.is_empty() {
            if !s.bucket.try_take(now) {
                return;
            }
            if let Some(namespace) = self.grant_next(s) {
                s.inflight += 1;
                s.admitted += 1;
                if s.bucket.rate().is_some() {
                    *s.counts.entry(namespace).or_default() += 1;
                }
            } else {
                s.bucket.refund();
            }
        }
    }

    /// Give a place to the next waiter in turn; its namespace, or None if it went away
    /// meanwhile.
    fn grant_next(&self, s: &mut State) -> Option<String> {
        let namespace = s.turns.front().cloned()?;
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
                s.turns.push_back(namespace.clone());
            }
            if let Some(next) = s.turns.front() {
                s.left_in_turn = self.weight(next);
            }
        }
        // A request that went away while waiting does not take it.
        tx.send(()).ok().map(|()| namespace)
    }

    /// Places paced by overload control: handed out by the probe as tokens come.
    pub(crate) fn dispatch_paced(&self, now: Instant) {
        let mut s = self.state.lock().expect("admission lock");
        self.dispatch(&mut s, now);
    }

    /// For the controller: places given since the last call, whether any request waits, and
    /// the current rate.
    pub(crate) fn take_window(&self) -> (u64, bool, Option<f64>) {
        let mut s = self.state.lock().expect("admission lock");
        let admitted = std::mem::take(&mut s.admitted);
        let counts = std::mem::take(&mut s.counts);
        let waiting: Vec<String> = s.waiting.keys().cloned().collect();
        s.heavy = self.heavy(&counts, waiting);
        (admitted, !s.turns.is_empty(), s.bucket.rate())
    }

    /// The namespaces that took at least their share (by weight) of the window's places,
    /// among those that took any or wait.
    fn heavy(&self, counts: &HashMap<String, u32>, waiting: Vec<String>) -> HashSet<String> {
        let mut active: HashSet<String> = counts.keys().cloned().collect();
        active.extend(waiting);
        let total: u32 = counts.values().sum();
        let weights: u32 = active.iter().map(|n| self.weight(n)).sum();
        if total == 0 || weights == 0 {
            return HashSet::new();
        }
        let per_weight = f64::from(total) / f64::from(weights);
        active
            .into_iter()
            .filter(|n| {
                let got = counts.get(n).copied().unwrap_or(0);
                f64::from(got) / f64::from(self.weight(n)) >= per_weight
            })
            .collect()
    }

    pub(crate) fn set_rate(&self, rate: Option<f64>, now: Instant) {
        let mut s = self.state.lock().expect("admission lock");
        s.bucket.set_rate(rate, now);
        self.dispatch(&mut s, now);
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
            overload_target_lag: None,
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

    // Paused: the test's instants are the only ones the bucket sees, however slow the machine.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn paced_places_come_at_the_rate_in_turn() {
        let a = admission(1000, 1000, &[]);
        let t0 = Instant::now();
        a.set_rate(Some(100.0), t0);
        // The bucket starts empty: the flood and then the quiet one wait.
        let mut waiters = Vec::new();
        for i in 0..21 {
            let ns = if i == 20 { "quiet" } else { "flood" };
            let a = a.clone();
            waiters.push(tokio::spawn(async move {
                let p = a.enter(ns).await.expect("queued");
                (ns, p)
            }));
            tokio::task::yield_now().await;
        }
        // 50 ms at 100/s: five places, one of them the quiet namespace's.
        for ms in (5..=50).step_by(5) {
            a.dispatch_paced(t0 + Duration::from_millis(ms));
        }
        tokio::task::yield_now().await;
        let granted: Vec<_> = waiters.iter().filter(|w| w.is_finished()).collect();
        assert!(
            (4..=6).contains(&granted.len()),
            "{} places in 50 ms at 100/s",
            granted.len()
        );
        assert!(
            waiters[20].is_finished(),
            "the quiet namespace waited behind the flood"
        );
        let (window, waiting, rate) = a.take_window();
        assert!(waiting && rate == Some(100.0) && (4..=6).contains(&window));
        // Lifting the rate lets the rest in at once.
        a.set_rate(None, t0 + Duration::from_millis(60));
        for w in waiters {
            drop(w.await.expect("task"));
        }
        assert_eq!(a.state.lock().expect("lock").inflight, 0);
    }

    // Paused: the test's instants are the only ones the bucket sees, however slow the machine.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn under_a_pace_a_quiet_namespace_goes_ahead_of_the_flood() {
        let a = admission(1000, 1000, &[]);
        let t0 = Instant::now();
        a.set_rate(Some(200.0), t0);
        let mut flood = Vec::new();
        for _ in 0..30 {
            let a = a.clone();
            flood.push(tokio::spawn(async move { a.enter("flood").await }));
            tokio::task::yield_now().await;
        }
        for ms in (5..=100).step_by(5) {
            a.dispatch_paced(t0 + Duration::from_millis(ms));
        }
        // The window: the flood took every place, so it is heavy; quiet took none.
        let (admitted, waiting, _) = a.take_window();
        assert!(waiting && admitted > 0);
        let quick = Duration::from_millis(50);
        // The bucket is empty and the flood waits, yet quiet gets in without a dispatch.
        let quiet = tokio::time::timeout(quick, a.enter("quiet")).await;
        assert!(
            quiet.is_ok_and(|r| r.is_ok()),
            "quiet waited behind the flood"
        );
        // The flood's next request waits for its turn.
        let more = tokio::time::timeout(quick, a.enter("flood")).await;
        assert!(more.is_err(), "the heavy namespace skipped the queue");
        // What quiet took is owed: the next paced token goes to pay it back.
        let inflight = a.state.lock().expect("lock").inflight;
        a.dispatch_paced(t0 + Duration::from_millis(102));
        assert_eq!(a.state.lock().expect("lock").inflight, inflight);
        a.set_rate(None, t0 + Duration::from_millis(110));
        for f in flood {
            drop(f.await.expect("task").expect("granted"));
        }
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
