//! Runtime values of the template language and their Java-flavoured text.
//!
//! Owns: [`Value`] (what an expression evaluates to while one render runs),
//! the list and map objects behind it, and the three ways a value becomes
//! text: Java `toString()` ([`write_display`]), JSON ([`write_json`]) and
//! Velocity truthiness/equality ([`truthy`], [`loose_eq`]).
//! Read first: [`Value`], then [`write_display`].
//!
//! Lists and maps are shared, mutable objects (`Rc<RefCell<..>>`) because
//! Velocity hands out Java references: `#set($b = $a)$b.add(1)` changes `$a`
//! too. They never leave a render, so the `Rc` does not stop [`Template`]
//! from being `Send + Sync`; only the compiled form crosses threads.
//!
//! [`Template`]: super::Template

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use super::java;

/// Collections nested deeper than this are refused when they are turned
/// into text: a list that contains itself (`$a.add($a)`) would otherwise
/// recurse forever (Java throws `StackOverflowError`; AWS answers 500).
pub(crate) const MAX_VALUE_NESTING: usize = 200;

/// One value. Cloning is cheap: strings are `Arc<str>`, collections are
/// shared handles.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// Java `int`/`long`; arithmetic that overflows `i64` becomes a double.
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    List(Rc<RefCell<ListObj>>),
    Map(Rc<RefCell<MapObj>>),
    /// A `Map.Entry` from `entrySet()`: `.key`, `.value`.
    Entry(Rc<(Value, Value)>),
    /// `$foreach` inside a loop.
    Loop(LoopInfo),
    /// A `#define` block, rendered where it is referenced.
    Block(u32),
    /// `$input`.
    Input,
    /// `$util`.
    Util,
    /// `$context`.
    Context,
    /// `$context.identity` and friends: a prefix of the flattened context keys.
    ContextPath(Arc<str>),
}

/// Position in a running `#foreach`, behind `$foreach`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoopInfo {
    pub index: usize,
    pub has_next: bool,
}

/// A Java `ArrayList`. `json` marks lists that came from JSON (`$input.path`,
/// `$util.parseJson`): AWS hands those out as json-smart `JSONArray`s, whose
/// `toString()` is JSON text (AWS-recorded: `[{"foo":"bar"}]`), while lists
/// built in the template print Java-style (`[one, foo, three]`).
#[derive(Debug, Default)]
pub(crate) struct ListObj {
    pub items: Vec<Value>,
    pub json: bool,
}

/// What kind of Java map a [`MapObj`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// A `LinkedHashMap` built by the template (`{}` literals; Velocity 1.7
    /// builds them in insertion order).
    Plain,
    /// A JSON object from `$input.path`/`$util.parseJson`. Prints like a
    /// Java map (`{foo=bar}`, AWS-recorded), but its lists print as JSON.
    Json,
    /// Request headers from `$input.params().header`: keys compare without
    /// regard to ASCII case, like HTTP header names.
    Headers,
    /// One of the `$context.requestOverride`/`responseOverride` maps: a key
    /// may be written once ("Overrides are final", AWS override docs).
    Override,
}

/// An insertion-ordered map with string keys. Small maps are searched
/// linearly; past [`INDEX_AT`] entries a hash index keeps JSON objects with
/// many keys O(1) per lookup.
#[derive(Debug)]
pub(crate) struct MapObj {
    pub kind: MapKind,
    entries: Vec<(Arc<str>, Value)>,
    index: Option<HashMap<Arc<str>, usize>>,
}

const INDEX_AT: usize = 16;

impl MapObj {
    pub fn new(kind: MapKind) -> MapObj {
        MapObj {
            kind,
            entries: Vec::new(),
            index: None,
        }
    }

    pub fn with_capacity(kind: MapKind, n: usize) -> MapObj {
        MapObj {
            kind,
            entries: Vec::with_capacity(n),
            index: None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.kind == MapKind::Headers {
            return self
                .entries
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key));
        }
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| &**k == key),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// `Map.put`: replaces in place (keeping the position, like
    /// `LinkedHashMap`) and returns the previous value.
    pub fn insert(&mut self, key: Arc<str>, value: Value) -> Option<Value> {
        if let Some(i) = self.position(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.entries.len());
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.kind != MapKind::Headers && self.entries.len() > INDEX_AT {
            self.rebuild_index();
        }
        None
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        let (_, value) = self.entries.remove(i);
        if self.index.is_some() {
            self.rebuild_index();
        }
        Some(value)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
    }

    fn rebuild_index(&mut self) {
        if self.entries.len() <= INDEX_AT {
            self.index = None;
            return;
        }
        let mut index = HashMap::with_capacity(self.entries.len());
        for (i, (k, _)) in self.entries.iter().enumerate() {
            index.insert(k.clone(), i);
        }
        self.index = Some(index);
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Arc<str>, Value)> {
        self.entries.iter()
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn string(s: String) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn new_list(items: Vec<Value>, json: bool) -> Value {
        Value::List(Rc::new(RefCell::new(ListObj { items, json })))
    }

    pub fn new_map(map: MapObj) -> Value {
        Value::Map(Rc::new(RefCell::new(map)))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// An integer argument (a Java `int` parameter). Doubles do not convert:
    /// Velocity finds no `get(int)` for a `Double` argument.
    pub fn as_index(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Velocity 1.7 `#if` truthiness: `false` and null are false, every other
/// value (empty strings and lists included) is true.
pub(crate) fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// Writes Java's `toString()` of `v`: what a reference prints and what
/// string concatenation uses. Stops with [`TextError::TooLong`] once `out`
/// is longer than `limit` bytes, so a list holding one big string a
/// thousand times cannot be printed into memory first.
pub(crate) fn write_display(
    v: &Value,
    out: &mut String,
    depth: usize,
    limit: usize,
) -> Result<(), TextError> {
    if depth > MAX_VALUE_NESTING {
        return Err(TextError::Nesting);
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => java::write_double(*f, out),
        Value::Str(s) => {
            if out.len() + s.len() > limit {
                return Err(TextError::TooLong);
            }
            out.push_str(s);
        }
        Value::List(list) => {
            let list = list.borrow();
            if list.json {
                return write_json_items(&list.items, out, depth, limit);
            }
            out.push('[');
            for (i, item) in list.items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_display(item, out, depth + 1, limit)?;
                check(out, limit)?;
            }
            out.push(']');
        }
        Value::Map(map) => {
            let map = map.borrow();
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                write_display(item, out, depth + 1, limit)?;
                check(out, limit)?;
            }
            out.push('}');
        }
        Value::Entry(e) => {
            write_display(&e.0, out, depth + 1, limit)?;
            out.push('=');
            write_display(&e.1, out, depth + 1, limit)?;
        }
        // Java objects without a useful toString() (AWS would print a class
        // name and hash); nothing is the least surprising text.
        Value::Loop(_)
        | Value::Block(_)
        | Value::Input
        | Value::Util
        | Value::Context
        | Value::ContextPath(_) => {}
    }
    Ok(())
}

/// Why a value could not be turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextError {
    /// Nested past [`MAX_VALUE_NESTING`].
    Nesting,
    /// The text grew past the caller's limit.
    TooLong,
}

/// A value nested past [`MAX_VALUE_NESTING`] (the evaluator's error helper
/// takes this marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Nesting;

fn check(out: &str, limit: usize) -> Result<(), TextError> {
    if out.len() > limit {
        Err(TextError::TooLong)
    } else {
        Ok(())
    }
}

fn write_json_items(
    items: &[Value],
    out: &mut String,
    depth: usize,
    limit: usize,
) -> Result<(), TextError> {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json(item, out, depth + 1, limit)?;
        check(out, limit)?;
    }
    out.push(']');
    Ok(())
}

/// Writes `v` as compact JSON (json-smart's `toJSONString`, which is what a
/// JSON list prints as).
pub(crate) fn write_json(
    v: &Value,
    out: &mut String,
    depth: usize,
    limit: usize,
) -> Result<(), TextError> {
    if depth > MAX_VALUE_NESTING {
        return Err(TextError::Nesting);
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        },
        Value::Str(s) => {
            if out.len() + s.len() > limit {
                return Err(TextError::TooLong);
            }
            java::write_json_string(s, out);
        }
        Value::List(list) => write_json_items(&list.borrow().items, out, depth, limit)?,
        Value::Map(map) => {
            let map = map.borrow();
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                java::write_json_string(k, out);
                out.push(':');
                write_json(item, out, depth + 1, limit)?;
                check(out, limit)?;
            }
            out.push('}');
        }
        Value::Entry(e) => {
            out.push('{');
            let mut key = String::new();
            write_display(&e.0, &mut key, depth + 1, limit)?;
            java::write_json_string(&key, out);
            out.push(':');
            write_json(&e.1, out, depth + 1, limit)?;
            out.push('}');
        }
        Value::Loop(_)
        | Value::Block(_)
        | Value::Input
        | Value::Util
        | Value::Context
        | Value::ContextPath(_) => out.push_str("null"),
    }
    Ok(())
}

/// Velocity 1.7 `==`: numbers compare by value whatever their type, values
/// of one type compare with `equals`, and values of different types compare
/// their `toString()` forms. A null equals null and the empty string (AWS
/// records that a missing `$input.path` "equals `$null`" and `== ""`).
pub(crate) fn loose_eq(
    a: &Value,
    b: &Value,
    depth: usize,
    limit: usize,
) -> Result<bool, TextError> {
    if depth > MAX_VALUE_NESTING {
        return Err(TextError::Nesting);
    }
    Ok(match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, Value::Str(s)) | (Value::Str(s), Value::Null) => s.is_empty(),
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            if Rc::ptr_eq(x, y) {
                return Ok(true);
            }
            let (x, y) = (x.borrow(), y.borrow());
            if x.items.len() != y.items.len() {
                return Ok(false);
            }
            for (p, q) in x.items.iter().zip(y.items.iter()) {
                if !loose_eq(p, q, depth + 1, limit)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Map(x), Value::Map(y)) => {
            if Rc::ptr_eq(x, y) {
                return Ok(true);
            }
            let (x, y) = (x.borrow(), y.borrow());
            if x.len() != y.len() {
                return Ok(false);
            }
            for (k, v) in x.iter() {
                match y.get(k) {
                    Some(w) if loose_eq(v, w, depth + 1, limit)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        _ => {
            let mut x = String::new();
            let mut y = String::new();
            write_display(a, &mut x, depth, limit)?;
            write_display(b, &mut y, depth, limit)?;
            x == y
        }
    })
}

/// Java `equals()` as lists and maps use it (`contains`, `indexOf`,
/// `remove(Object)`): no conversions between types, so `"1"` is not `1` and
/// `1` is not `1.0`.
pub(crate) fn java_equals(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_VALUE_NESTING {
        return false;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            Rc::ptr_eq(x, y) || {
                let (x, y) = (x.borrow(), y.borrow());
                x.items.len() == y.items.len()
                    && x.items
                        .iter()
                        .zip(y.items.iter())
                        .all(|(p, q)| java_equals(p, q, depth + 1))
            }
        }
        (Value::Map(x), Value::Map(y)) => {
            Rc::ptr_eq(x, y) || {
                let (x, y) = (x.borrow(), y.borrow());
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| java_equals(v, w, depth + 1)))
            }
        }
        (Value::Entry(x), Value::Entry(y)) => {
            java_equals(&x.0, &y.0, depth + 1) && java_equals(&x.1, &y.1, depth + 1)
        }
        _ => false,
    }
}

/// Converts a JSON value to a template value. `budget` is charged one unit
/// per node so a huge body cannot be converted over and over for free.
pub(crate) fn from_json(
    v: &serde_json::Value,
    budget: &mut dyn FnMut(usize) -> bool,
) -> Option<Value> {
    from_json_at(v, budget, 0)
}

fn from_json_at(
    v: &serde_json::Value,
    budget: &mut dyn FnMut(usize) -> bool,
    depth: usize,
) -> Option<Value> {
    if depth > MAX_VALUE_NESTING {
        return None;
    }
    Some(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => number_value(n),
        serde_json::Value::String(s) => {
            if !budget(s.len() + 16) {
                return None;
            }
            Value::str(s)
        }
        serde_json::Value::Array(items) => {
            if !budget(items.len() * 16 + 32) {
                return None;
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(from_json_at(item, budget, depth + 1)?);
            }
            Value::new_list(out, true)
        }
        serde_json::Value::Object(map) => {
            if !budget(map.len() * 48 + 32) {
                return None;
            }
            let mut out = MapObj::with_capacity(MapKind::Json, map.len());
            for (k, item) in map {
                out.insert(
                    Arc::from(k.as_str()),
                    from_json_at(item, budget, depth + 1)?,
                );
            }
            Value::new_map(out)
        }
    })
}

/// JSON numbers become Java `Integer`/`Long` when they are integers and
/// `Double` otherwise (Jayway JsonPath with json-smart does the same).
pub(crate) fn number_value(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else {
        Value::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn display(v: &Value) -> String {
        let mut s = String::new();
        write_display(v, &mut s, 0, usize::MAX).unwrap();
        s
    }

    fn json(text: &str) -> Value {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        from_json(&v, &mut |_| true).unwrap()
    }

    /// `(JSON input, Java toString())`, the AWS-recorded `$input.path`
    /// formatting from LocalStack's `test_input_path_template_formatting`.
    #[test]
    fn json_values_print_like_aws() {
        let cases = [
            (r#"{"foo":"bar"}"#, "{foo=bar}"),
            (r#"[{"foo":"bar"}]"#, r#"[{"foo":"bar"}]"#),
            (
                r#"{"foo":[{"nested":"bar"}]}"#,
                r#"{foo=[{"nested":"bar"}]}"#,
            ),
            (
                r#"{"bigger":"dict","to":"test","with":"separators"}"#,
                "{bigger=dict, to=test, with=separators}",
            ),
            ("[]", "[]"),
            (r#"{"a":{"b":1.5,"c":null}}"#, "{a={b=1.5, c=null}}"),
            ("1.0", "1.0"),
            ("10000000.0", "1.0E7"),
            ("\"x\"", "x"),
        ];
        for (input, expected) in cases {
            assert_eq!(display(&json(input)), expected, "{input}");
        }
    }

    #[test]
    fn template_lists_print_java_style() {
        let v = Value::new_list(vec![Value::str("one"), Value::Int(2), Value::Null], false);
        assert_eq!(display(&v), "[one, 2, null]");
    }

    #[test]
    fn self_containing_list_is_refused_not_overflowed() {
        let v = Value::new_list(vec![], false);
        if let Value::List(l) = &v {
            l.borrow_mut().items.push(v.clone());
        }
        let mut s = String::new();
        assert_eq!(
            write_display(&v, &mut s, 0, usize::MAX),
            Err(TextError::Nesting)
        );
        assert_eq!(loose_eq(&v, &v, 0, usize::MAX), Ok(true));
        let big = Value::new_list(vec![Value::str("0123456789"); 100], false);
        assert_eq!(
            write_display(&big, &mut String::new(), 0, 500),
            Err(TextError::TooLong)
        );
    }

    #[test]
    fn equality_table() {
        let cases = [
            (Value::Int(1), Value::Float(1.0), true),
            (Value::Int(1), Value::str("1"), true),
            (Value::Null, Value::str(""), true),
            (Value::Null, Value::Null, true),
            (Value::Null, Value::Int(0), false),
            (Value::Bool(true), Value::str("true"), true),
            (Value::str("a"), Value::str("b"), false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(loose_eq(&a, &b, 0, 1024), Ok(expected), "{a:?} == {b:?}");
        }
    }

    #[test]
    fn big_maps_keep_order_and_lookup() {
        let mut m = MapObj::new(MapKind::Plain);
        for i in 0..40 {
            m.insert(Arc::from(format!("k{i}")), Value::Int(i));
        }
        assert!(matches!(m.get("k33"), Some(Value::Int(33))));
        assert!(matches!(m.remove("k3"), Some(Value::Int(3))));
        assert!(matches!(m.get("k39"), Some(Value::Int(39))));
        assert!(m.get("k3").is_none());
        assert_eq!(m.iter().nth(3).map(|(k, _)| &**k), Some("k4"));
        let mut h = MapObj::new(MapKind::Headers);
        h.insert(Arc::from("Content-Type"), Value::str("a"));
        assert!(h.contains_key("content-type"));
    }
}
