//! Random requests, generic over any message type by reflection: random subsets of fields,
//! hostile strings and bytes, unknown enum numbers, absurd durations and timestamps, long
//! repeated fields and deep recursion (`Failure.cause`), within budgets that keep one
//! request to a few megabytes.

use std::collections::HashMap;

use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};

/// Largest single string or bytes value (1 MiB).
pub const HUGE: usize = 1 << 20;
/// Bytes of strings and bytes one request may carry in all.
const BYTES_BUDGET: usize = 3 * HUGE;
/// Values one request may carry in all.
const VALUES_BUDGET: usize = 3_000;
/// Depth of ordinary nesting; a recursive chain (below) goes deeper.
const MAX_DEPTH: u32 = 6;

/// Values a fuzzed request borrows from the run, so that some requests reach past the
/// lookups: workflows that exist and task tokens the server issued.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub workflow_ids: Vec<String>,
    pub task_queue: String,
    pub task_tokens: Vec<Vec<u8>>,
    /// A schedule the run created.
    pub schedule_id: String,
}

pub struct Gen<'a> {
    pub rng: &'a mut StdRng,
    pub known: &'a Known,
    /// Chance that a string field named `namespace` is `default`.
    pub namespace_default: f64,
    /// Follow self-recursive fields down to this depth.
    pub chain_depth: u32,
    /// Whether map fields get entries. prost-reflect encodes a map in its hash order, which
    /// differs between processes: requests broken at the byte level leave maps out, so that
    /// they stay a function of the seed byte for byte.
    pub maps: bool,
    bytes_left: usize,
    values_left: usize,
}

impl<'a> Gen<'a> {
    pub fn new(rng: &'a mut StdRng, known: &'a Known) -> Self {
        let chain_depth = if rng.random_bool(0.1) {
            // Mostly within prost's recursion limit (100), sometimes past it.
            if rng.random_bool(0.8) {
                rng.random_range(10..90)
            } else {
                rng.random_range(90..140)
            }
        } else {
            0
        };
        Self {
            rng,
            known,
            namespace_default: 0.85,
            chain_depth,
            maps: true,
            bytes_left: BYTES_BUDGET,
            values_left: VALUES_BUDGET,
        }
    }

    /// A message of type `desc` with a random subset of its fields set.
    pub fn message(&mut self, desc: &MessageDescriptor, depth: u32) -> DynamicMessage {
        let mut msg = DynamicMessage::new(desc.clone());
        self.values_left = self.values_left.saturating_sub(1);
        // Fewer fields deeper down, or nesting would multiply the size at each level.
        let p = if depth > MAX_DEPTH || self.values_left == 0 {
            0.0
        } else {
            *[0.1, 0.3, 0.6, 0.9]
                .choose(self.rng)
                .expect("a non-empty list")
                / f64::from(1 + depth)
        };
        for field in desc.fields() {
            let recursive = matches!(field.kind(), Kind::Message(ref m) if m == desc);
            if recursive && depth < self.chain_depth && self.values_left > 0 {
                let inner = self.message(desc, depth + 1);
                let v = Value::Message(inner);
                msg.set_field(
                    &field,
                    if field.is_list() {
                        Value::List(vec![v])
                    } else {
                        v
                    },
                );
                continue;
            }
            if self.values_left > 0 && (self.maps || !field.is_map()) && self.rng.random_bool(p) {
                let v = self.field_value(&field, depth);
                msg.set_field(&field, v);
            }
        }
        if let Some(ns) = desc.get_field_by_name("namespace")
            && matches!(ns.kind(), Kind::String)
            && !ns.is_list()
            && self.rng.random_bool(self.namespace_default)
        {
            msg.set_field(&ns, Value::String("default".into()));
        }
        msg
    }

    /// A value for `field`: a list or map when the field is one.
    pub fn field_value(&mut self, field: &FieldDescriptor, depth: u32) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return Value::Map(HashMap::new());
            };
            let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            let mut map = HashMap::new();
            for _ in 0..self.count() {
                let key = match self.single(&kf, depth + 1) {
                    Value::String(s) => MapKey::String(s),
                    Value::Bool(b) => MapKey::Bool(b),
                    Value::I32(i) => MapKey::I32(i),
                    Value::I64(i) => MapKey::I64(i),
                    Value::U32(i) => MapKey::U32(i),
                    Value::U64(i) => MapKey::U64(i),
                    _ => continue,
                };
                let value = self.single(&vf, depth + 1);
                map.insert(key, value);
            }
            Value::Map(map)
        } else if field.is_list() {
            let n = self.count();
            Value::List((0..n).map(|_| self.single(field, depth + 1)).collect())
        } else {
            self.single(field, depth)
        }
    }

    /// How many elements a repeated field or map gets.
    fn count(&mut self) -> usize {
        let n = match self.rng.random_range(0..100) {
            0..70 => self.rng.random_range(0..4),
            70..95 => self.rng.random_range(4..50),
            _ => self.rng.random_range(50..2000),
        };
        n.min(self.values_left)
    }

    fn single(&mut self, field: &FieldDescriptor, depth: u32) -> Value {
        self.values_left = self.values_left.saturating_sub(1);
        let name = field.name();
        match field.kind() {
            Kind::Double => Value::F64(self.float()),
            Kind::Float => Value::F32(self.float() as f32),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(self.int() as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(self.int()),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(self.int() as u32),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(self.int() as u64),
            Kind::Bool => Value::Bool(self.rng.random()),
            Kind::String => Value::String(self.string(name)),
            Kind::Bytes => Value::Bytes(Bytes::from(self.bytes(name))),
            Kind::Enum(e) => {
                let known: Vec<i32> = e.values().map(|v| v.number()).collect();
                match self.rng.random_range(0..10) {
                    0..7 => Value::EnumNumber(*known.choose(self.rng).unwrap_or(&0)),
                    7 => Value::EnumNumber(-1),
                    8 => Value::EnumNumber(self.rng.random_range(100..100_000)),
                    _ => Value::EnumNumber(*[i32::MAX, i32::MIN].choose(self.rng).unwrap_or(&0)),
                }
            }
            Kind::Message(m) => match m.full_name() {
                "google.protobuf.Duration" | "google.protobuf.Timestamp" => {
                    Value::Message(self.time(&m))
                }
                _ => Value::Message(self.message(&m, depth + 1)),
            },
        }
    }

    /// A Duration or Timestamp: ordinary, zero, negative, absurd or with nanos out of range.
    fn time(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let seconds: i64 = match self.rng.random_range(0..12) {
            0..4 => self.rng.random_range(1..3600),
            4 => 0,
            5 => -1,
            6 => -self.rng.random_range(1..1_000_000_000),
            7 => i64::MAX,
            8 => i64::MIN,
            // Just past the range protobuf allows (10,000 years).
            9 => 315_576_000_001,
            10 => 253_402_300_800,
            _ => self.rng.random(),
        };
        let nanos: i32 = match self.rng.random_range(0..8) {
            0..4 => 0,
            4 => self.rng.random_range(0..1_000_000_000),
            5 => 1_000_000_000,
            6 => -1,
            _ => *[i32::MAX, i32::MIN].choose(self.rng).unwrap_or(&0),
        };
        let mut msg = DynamicMessage::new(desc.clone());
        msg.set_field_by_name("seconds", Value::I64(seconds));
        msg.set_field_by_name("nanos", Value::I32(nanos));
        msg
    }

    fn int(&mut self) -> i64 {
        match self.rng.random_range(0..10) {
            0..4 => self.rng.random_range(0..10),
            4 => -1,
            5 => self.rng.random_range(10..100_000),
            6 => *[
                i64::MAX,
                i64::MIN,
                i32::MAX as i64,
                i32::MIN as i64,
                u32::MAX as i64,
            ]
            .choose(self.rng)
            .unwrap_or(&0),
            _ => self.rng.random(),
        }
    }

    fn float(&mut self) -> f64 {
        match self.rng.random_range(0..8) {
            0..3 => self.rng.random_range(0.0..10.0),
            3 => f64::NAN,
            4 => *[f64::INFINITY, f64::NEG_INFINITY]
                .choose(self.rng)
                .unwrap_or(&0.0),
            5 => -self.rng.random_range(0.0..1e9),
            6 => *[f64::MAX, f64::MIN_POSITIVE, -0.0]
                .choose(self.rng)
                .unwrap_or(&0.0),
            _ => self.rng.random(),
        }
    }

    /// A string for a field called `name`: sometimes the value a valid request would carry.
    pub fn string(&mut self, name: &str) -> String {
        if name.contains("workflow_id")
            && !self.known.workflow_ids.is_empty()
            && self.rng.random_bool(0.4)
        {
            return self
                .known
                .workflow_ids
                .choose(self.rng)
                .cloned()
                .unwrap_or_default();
        }
        if name == "schedule_id" && !self.known.schedule_id.is_empty() && self.rng.random_bool(0.5)
        {
            return self.known.schedule_id.clone();
        }
        if name == "name" && self.rng.random_bool(0.3) && !self.known.task_queue.is_empty() {
            return self.known.task_queue.clone();
        }
        let s = match self.rng.random_range(0..20) {
            0..3 => String::new(),
            3..7 => format!("fuzz-{}", self.rng.random_range(0..1000)),
            7 => "default".into(),
            8 => "日本語 🦀 مرحبا e\u{301} \u{202e}rtl \u{feff}".into(),
            9 => format!("nul\0inside\0{}", self.rng.random_range(0..10)),
            10 => " \t\n ".into(),
            11 => "../../etc/passwd %s %n {{}} '\"; DROP TABLE x; --".into(),
            12 => "*".repeat(self.rng.random_range(200..5000)),
            13 => "\u{10ffff}\u{fffd}\u{0}\u{1f}\u{7f}".into(),
            14 => "WorkflowId = 'x' OR ExecutionStatus = 'Running' ORDER BY StartTime".into(),
            15 => "0 */5 * * * ? 2099 UTC".into(),
            16 => (0..self.rng.random_range(1..64))
                .map(|_| char::from_u32(self.rng.random_range(0..0x11_0000)).unwrap_or('\u{fffd}'))
                .collect(),
            17 => "a".repeat(self.rng.random_range(1000..1200)),
            18 if self.rng.random_bool(0.3) => {
                let n = self.rng.random_range(HUGE / 2..=HUGE);
                "x".repeat(n)
            }
            _ => uuid_like(self.rng),
        };
        self.charge(s.len(), s)
    }

    /// Bytes for a field called `name`: forged task tokens for token fields, invalid UTF-8
    /// and encodings for payload metadata and data.
    pub fn bytes(&mut self, name: &str) -> Vec<u8> {
        if name.contains("token") {
            let t = self.token();
            return self.charge(t.len(), t);
        }
        let b = match self.rng.random_range(0..12) {
            0..2 => Vec::new(),
            2 => b"json/plain".to_vec(),
            3 => b"binary/null".to_vec(),
            4 => b"json/protobuf".to_vec(),
            5 => vec![0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80],
            6 => b"\"unterminated".to_vec(),
            7 => b"{\"a\":".repeat(self.rng.random_range(1..2000)),
            8 if self.rng.random_bool(0.3) => self.random_bytes(HUGE),
            _ => self.random_bytes(64),
        };
        self.charge(b.len(), b)
    }

    /// A task token: random, empty, or a real one truncated, extended or bit-flipped.
    pub fn token(&mut self) -> Vec<u8> {
        let real = self.known.task_tokens.choose(self.rng).cloned();
        match (self.rng.random_range(0..8), real) {
            (0, _) => Vec::new(),
            (1, _) => self.random_bytes(64),
            (2, Some(t)) => t,
            (3, Some(mut t)) if !t.is_empty() => {
                let n = self.rng.random_range(0..t.len());
                t.truncate(n);
                t
            }
            (4 | 5, Some(mut t)) if !t.is_empty() => {
                for _ in 0..self.rng.random_range(1..4) {
                    let i = self.rng.random_range(0..t.len());
                    t[i] ^= 1 << self.rng.random_range(0..8);
                }
                t
            }
            (6, Some(mut t)) => {
                t.extend(self.random_bytes(16));
                t
            }
            // Proto-shaped: a length-delimited field holding random bytes.
            _ => {
                let inner = self.random_bytes(40);
                let mut t = vec![0x0a, inner.len() as u8];
                t.extend(inner);
                t
            }
        }
    }

    fn random_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.rng.random_range(0..=max);
        let mut b = vec![0; n];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// Count `len` bytes against the request's budget; past it, an empty value.
    fn charge<T: Default>(&mut self, len: usize, value: T) -> T {
        if len > self.bytes_left {
            return T::default();
        }
        self.bytes_left -= len;
        value
    }
}

fn uuid_like(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}
