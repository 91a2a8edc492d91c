//! What the fuzzer makes of each answer, and the report it prints: counts per method and
//! code, every bad answer with the seed and index that reproduce it, the health check and
//! the server's memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tonic::{Code, Status};

use super::Mode;
use super::schema::Method;

/// What an answer says about the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// OK, or an error a client's bad request may cause.
    Fine,
    /// INTERNAL from the gRPC codec for bytes that are not a valid message: what grpc-go
    /// (and so Temporal) answers too.
    Undecodable,
    /// INTERNAL, UNKNOWN, UNAVAILABLE, a broken connection: a bug, or a crash.
    Bad,
    /// The connection was closed by the server's guard against rapid stream resets, which
    /// our cancelled calls trip when the server is too starved of CPU to accept streams.
    Overload,
}

/// The answer to one request.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub index: u64,
    pub method: usize,
    pub mode: Mode,
    pub size: usize,
    pub code: &'static str,
    pub message: String,
    pub verdict: Verdict,
}

/// Codes a client's request may legitimately cause.
const FINE: &[Code] = &[
    Code::Ok,
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::FailedPrecondition,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::Unimplemented,
    Code::OutOfRange,
    Code::Cancelled,
    Code::DeadlineExceeded,
    // A conflict with a concurrent change (two fuzzed UpdateNamespace calls at once):
    // retryable, and about concurrency, not the request.
    Code::Aborted,
];

pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Outcome {
    pub fn new(
        index: u64,
        method: usize,
        mode: Mode,
        size: usize,
        answer: Result<Vec<u8>, Status>,
    ) -> Self {
        let (code, message, verdict) = match answer {
            Ok(_) => ("OK", String::new(), Verdict::Fine),
            Err(s) => {
                let message: String = s.message().chars().take(300).collect();
                // A status the client made up from a broken connection carries its cause.
                let source = std::error::Error::source(&s);
                let timed_out = std::iter::successors(source, |e| e.source())
                    .any(|e| e.is::<tonic::TimeoutExpired>());
                if timed_out {
                    // Our own deadline passed first: a long poll, or a query or update that
                    // waits for a worker that never comes.
                    ("DEADLINE_EXCEEDED", message, Verdict::Fine)
                } else if std::iter::successors(source, |e| e.source()).any(|e| {
                    let e = format!("{e:?}");
                    e.contains("too_many_resets")
                        || e.contains("BrokenPipe")
                        || e.contains("connection closed")
                }) {
                    // The server's HTTP/2 guard against rapid resets (CVE-2023-44487) closed
                    // the connection (GOAWAY too_many_resets; calls still being written then
                    // see a broken pipe or a closed connection): our own deadlines cancelled
                    // more than 20 streams it had not yet accepted, which happens when it is
                    // starved of CPU. Load, not bad input: counted apart and reported; a
                    // crash is caught by the health check at the end.
                    ("CONNECTION_CLOSED", message, Verdict::Overload)
                } else if let Some(mut cause) = source {
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    let message = format!("{}: {message} ({cause:?})", code_name(s.code()));
                    ("TRANSPORT", message, Verdict::Bad)
                } else if s.code() == Code::Internal
                    && s.message().starts_with("failed to decode Protobuf message")
                {
                    ("INTERNAL(decode)", message, Verdict::Undecodable)
                } else if FINE.contains(&s.code()) {
                    (code_name(s.code()), message, Verdict::Fine)
                } else {
                    (code_name(s.code()), message, Verdict::Bad)
                }
            }
        };
        Self {
            index,
            method,
            mode,
            size,
            code,
            message,
            verdict,
        }
    }
}

/// Everything the run saw.
pub struct Report {
    pub seed: u64,
    methods: Vec<String>,
    pub streaming_skipped: Vec<String>,
    pub per_method: BTreeMap<(usize, &'static str), u64>,
    pub per_code: BTreeMap<&'static str, u64>,
    pub per_mode: BTreeMap<(Mode, &'static str), u64>,
    pub bad: Vec<Outcome>,
    /// Calls lost to the server's rapid-reset guard (see [`Verdict::Overload`]).
    pub overload: u64,
    pub requests: u64,
    pub elapsed: Duration,
    /// Why the final health check failed, if it did.
    pub healthy: Option<String>,
    /// The server's RSS before and after, in bytes.
    pub rss: Option<(u64, u64)>,
}

impl Report {
    pub fn new(seed: u64, methods: &[Method], streaming_skipped: Vec<String>) -> Self {
        Self {
            seed,
            methods: methods.iter().map(|m| m.short.clone()).collect(),
            streaming_skipped,
            per_method: BTreeMap::new(),
            per_code: BTreeMap::new(),
            per_mode: BTreeMap::new(),
            bad: Vec::new(),
            overload: 0,
            requests: 0,
            elapsed: Duration::ZERO,
            healthy: None,
            rss: None,
        }
    }

    pub fn add(&mut self, o: Outcome) {
        self.requests += 1;
        *self.per_method.entry((o.method, o.code)).or_default() += 1;
        *self.per_code.entry(o.code).or_default() += 1;
        *self.per_mode.entry((o.mode, o.code)).or_default() += 1;
        match o.verdict {
            Verdict::Bad => self.bad.push(o),
            Verdict::Overload => self.overload += 1,
            Verdict::Fine | Verdict::Undecodable => {}
        }
    }

    pub fn bad_count(&self) -> u64 {
        self.bad.len() as u64
    }

    /// The printed report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:<58} {:>6}  answers", "method", "sent");
        let mut rows: BTreeMap<usize, Vec<(&str, u64)>> = BTreeMap::new();
        for (&(m, code), &n) in &self.per_method {
            rows.entry(m).or_default().push((code, n));
        }
        for (m, codes) in rows {
            let sent: u64 = codes.iter().map(|c| c.1).sum();
            let list = codes
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(s, "{:<58} {sent:>6}  {list}", self.methods[m]);
        }
        let _ = writeln!(s, "\nper code:");
        for (code, n) in &self.per_code {
            let _ = writeln!(s, "  {code:<22} {n:>8}");
        }
        let _ = writeln!(s, "\nper kind of request:");
        let mut modes: BTreeMap<Mode, Vec<String>> = BTreeMap::new();
        for (&(mode, code), &n) in &self.per_mode {
            modes.entry(mode).or_default().push(format!("{code}={n}"));
        }
        for (mode, codes) in modes {
            let _ = writeln!(s, "  {:<10} {}", format!("{mode:?}"), codes.join(" "));
        }
        if !self.streaming_skipped.is_empty() {
            let _ = writeln!(
                s,
                "\nstreaming methods not covered: {:?}",
                self.streaming_skipped
            );
        }
        if !self.bad.is_empty() {
            let _ = writeln!(
                s,
                "\nbad answers (reproduce with --seed {} --only-index N):",
                self.seed
            );
            let mut bad = self.bad.clone();
            bad.sort_by_key(|o| o.index);
            for o in bad.iter().take(100) {
                let _ = writeln!(
                    s,
                    "  index {} {} ({:?}, {} bytes): {} {}",
                    o.index, self.methods[o.method], o.mode, o.size, o.code, o.message
                );
            }
            if bad.len() > 100 {
                let _ = writeln!(s, "  ... and {} more", bad.len() - 100);
            }
        }
        if self.overload > 0 {
            let _ = writeln!(
                s,
                "\n{} call(s) lost when the server closed a connection (GOAWAY \
                 too_many_resets: our deadlines cancelled more streams than it had accepted, \
                 as happens when it is starved of CPU) and stayed healthy. Not counted as \
                 bad answers.",
                self.overload
            );
        }
        if let Some((before, after)) = self.rss {
            let _ = writeln!(
                s,
                "\nserver RSS: {:.1} MiB before, {:.1} MiB after",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0
            );
        }
        let health = match &self.healthy {
            None => "healthy".to_string(),
            Some(why) => format!("NOT HEALTHY ({why})"),
        };
        let _ = writeln!(
            s,
            "\nfuzz: {} requests with seed {} in {:.1?} ({:.0}/s); server {health}; bad answers: {}",
            self.requests,
            self.seed,
            self.elapsed,
            self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.bad.len()
        );
        s
    }
}
