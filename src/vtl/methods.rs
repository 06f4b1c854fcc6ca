//! Java methods the templates call on strings, lists, maps and numbers.
//!
//! Owns: method dispatch by receiver kind and name ([`Machine::call_method`])
//! and the `java.lang.String`, `ArrayList`, `LinkedHashMap` and `Number`
//! methods AWS templates use. A method that does not exist, or gets
//! arguments of the wrong kind, yields null (Velocity finds no method and
//! the reference is null); a method that exists and fails (an index out of
//! range, a bad regex) is a [`RenderError`](super::RenderError), as the Java
//! exception makes AWS answer 500.
//! Read first: [`Machine::call_method`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::ast::{MethodCall, Pre};
use super::eval::{loop_method, Machine, R};
use super::java;
use super::value::{java_equals, ListObj, MapObj, Value};

impl<'t> Machine<'t> {
    pub(crate) fn call_method(
        &mut self,
        cur: &Value,
        call: &'t MethodCall,
        args: Vec<Value>,
    ) -> R<Option<Value>> {
        self.step(1)?;
        let name = &*call.name;
        // Every Java object has these two.
        match (name, args.len()) {
            ("toString", 0) => {
                if matches!(
                    cur,
                    Value::Input | Value::Util | Value::Context | Value::ContextPath(_)
                ) {
                    return Ok(None);
                }
                return Ok(Some(Value::Str(self.text(cur)?)));
            }
            ("equals", 1) => return Ok(Some(Value::Bool(java_equals(cur, &args[0], 0)))),
            _ => {}
        }
        if let Some(r) = self.static_method(cur, name, &args) {
            return r;
        }
        match cur {
            Value::Str(s) => self.string_method(s, call, &args),
            Value::Block(_) => {
                let s = self.text(cur)?;
                self.string_method(&s, call, &args)
            }
            Value::List(l) => self.list_method(l, name, &args),
            Value::Map(m) => self.map_method(cur, m, name, &args),
            Value::Input => self.input_method(call, &args),
            Value::Util => self.util_method(name, &args),
            Value::Loop(info) if args.is_empty() => Ok(loop_method(info, name)),
            Value::Entry(e) if args.is_empty() => Ok(match name {
                "getKey" => Some(e.0.clone()),
                "getValue" => Some(e.1.clone()),
                _ => None,
            }),
            Value::Int(_) | Value::Float(_) => Ok(number_method(cur, name, &args)),
            Value::Bool(b) if name == "booleanValue" && args.is_empty() => {
                Ok(Some(Value::Bool(*b)))
            }
            Value::Context | Value::ContextPath(_) if name == "get" && args.len() == 1 => {
                let key = self.text(&args[0])?;
                self.get_prop(cur, &key)
            }
            _ => Ok(None),
        }
    }

    /// Static methods of the receiver's Java class, which Velocity finds
    /// through any instance (`#set($Integer = 0)$Integer.parseInt('42')`,
    /// a known API Gateway idiom for turning a parameter into a number):
    /// `Integer`/`Long` `parseInt`, `parseLong`, `valueOf`; `Double`
    /// `parseDouble`, `valueOf`; `Boolean` `parseBoolean`, `valueOf`;
    /// `String` `valueOf`. A string that is not a number throws in Java
    /// (NumberFormatException: AWS answers 500), so it is a render error.
    fn static_method(
        &mut self,
        cur: &Value,
        name: &str,
        args: &[Value],
    ) -> Option<R<Option<Value>>> {
        if args.len() != 1 {
            return None;
        }
        let arg = &args[0];
        let text = |m: &mut Self| m.text(arg);
        Some(match (cur, name) {
            // Velocity's integers are `Integer` in 32 bits, `Long` beyond
            // (literals and JSON alike): `Integer` has `parseInt`, `Long`
            // has `parseLong`.
            (Value::Int(i), "parseInt" | "parseLong" | "valueOf")
                if name == "valueOf" || (name == "parseInt") == i32::try_from(*i).is_ok() =>
            {
                if !matches!(arg, Value::Str(_)) {
                    return (name == "valueOf" && matches!(arg, Value::Int(_)))
                        .then(|| Ok(Some(arg.clone())));
                }
                let t = match text(self) {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                let long = match cur {
                    Value::Int(i) => i32::try_from(*i).is_err(),
                    _ => false,
                };
                let parsed = if long {
                    parse_java_int(&t)
                } else {
                    parse_java_int(&t).filter(|v| i32::try_from(*v).is_ok())
                };
                match parsed {
                    Some(v) => Ok(Some(Value::Int(v))),
                    None => self.runtime(format!(
                        "{name}: For input string: \"{t}\" (NumberFormatException)"
                    )),
                }
            }
            (Value::Float(_), "parseDouble" | "valueOf") => {
                if !matches!(arg, Value::Str(_)) {
                    return None;
                }
                let t = match text(self) {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                match parse_java_double(&t) {
                    Some(v) => Ok(Some(Value::Float(v))),
                    None => self.runtime(format!(
                        "{name}: For input string: \"{t}\" (NumberFormatException)"
                    )),
                }
            }
            (Value::Bool(_), "parseBoolean" | "valueOf") => match arg {
                Value::Bool(b) => Ok(Some(Value::Bool(*b))),
                Value::Str(t) => Ok(Some(Value::Bool(t.eq_ignore_ascii_case("true")))),
                _ => return None,
            },
            (Value::Str(_), "valueOf") => match text(self) {
                Ok(t) => Ok(Some(Value::Str(t))),
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }

    fn int_arg(args: &[Value], i: usize) -> Option<i64> {
        args.get(i).and_then(Value::as_index)
    }

    fn new_str(&mut self, s: String) -> R<Option<Value>> {
        self.charge(s.len())?;
        Ok(Some(Value::string(s)))
    }

    fn string_method(
        &mut self,
        s: &Arc<str>,
        call: &'t MethodCall,
        args: &[Value],
    ) -> R<Option<Value>> {
        let name = &*call.name;
        self.step((s.len() / 64) as u64)?;
        Ok(Some(match (name, args.len()) {
            ("length", 0) => Value::Int(java::utf16_len(s) as i64),
            ("isEmpty", 0) => Value::Bool(s.is_empty()),
            ("contains", 1) => {
                let x = self.text(&args[0])?;
                Value::Bool(s.contains(&*x))
            }
            ("startsWith", 1) => {
                let x = self.text(&args[0])?;
                Value::Bool(s.starts_with(&*x))
            }
            ("startsWith", 2) => {
                let x = self.text(&args[0])?;
                let Some(off) = Self::int_arg(args, 1) else {
                    return Ok(None);
                };
                let at = usize::try_from(off)
                    .ok()
                    .and_then(|o| java::byte_at_utf16(s, o));
                Value::Bool(at.is_some_and(|b| s[b..].starts_with(&*x)))
            }
            ("endsWith", 1) => {
                let x = self.text(&args[0])?;
                Value::Bool(s.ends_with(&*x))
            }
            ("equalsIgnoreCase", 1) => Value::Bool(match &args[0] {
                Value::Str(x) => {
                    s.eq_ignore_ascii_case(x) || java::to_lower(s) == java::to_lower(x)
                }
                _ => false,
            }),
            ("indexOf", 1 | 2) => {
                let x = self.text(&args[0])?;
                let from = match args.get(1) {
                    None => 0,
                    Some(v) => match v.as_index() {
                        Some(i) => i.max(0) as usize,
                        None => return Ok(None),
                    },
                };
                let found =
                    java::byte_at_utf16(s, from).and_then(|b| s[b..].find(&*x).map(|p| p + b));
                Value::Int(found.map_or(-1, |b| java::utf16_at_byte(s, b) as i64))
            }
            ("lastIndexOf", 1) => {
                let x = self.text(&args[0])?;
                Value::Int(
                    s.rfind(&*x)
                        .map_or(-1, |b| java::utf16_at_byte(s, b) as i64),
                )
            }
            // The last occurrence starting at or before `from` (UTF-16).
            ("lastIndexOf", 2) => {
                let x = self.text(&args[0])?;
                let Some(from) = args[1].as_index() else {
                    return Ok(None);
                };
                Value::Int(
                    s.char_indices()
                        .map(|(b, _)| b)
                        .chain(std::iter::once(s.len()))
                        .filter(|&b| s[b..].starts_with(&*x))
                        .map(|b| java::utf16_at_byte(s, b) as i64)
                        .take_while(|&i| i <= from)
                        .last()
                        .unwrap_or(-1),
                )
            }
            ("substring", 1 | 2) => {
                let n = java::utf16_len(s) as i64;
                let Some(a) = Self::int_arg(args, 0) else {
                    return Ok(None);
                };
                let b = match args.get(1) {
                    None => n,
                    Some(v) => match v.as_index() {
                        Some(b) => b,
                        None => return Ok(None),
                    },
                };
                if a < 0 || b > n || a > b {
                    return self.runtime(format!(
                        "substring: begin {a}, end {b}, length {n} (StringIndexOutOfBoundsException)"
                    ));
                }
                match (
                    java::byte_at_utf16(s, a as usize),
                    java::byte_at_utf16(s, b as usize),
                ) {
                    (Some(x), Some(y)) => return self.new_str(s[x..y].to_owned()),
                    _ => return self.runtime("substring splits a surrogate pair"),
                }
            }
            ("charAt", 1) => {
                let Some(i) = Self::int_arg(args, 0) else {
                    return Ok(None);
                };
                let ch = usize::try_from(i)
                    .ok()
                    .and_then(|i| java::byte_at_utf16(s, i))
                    .and_then(|b| s[b..].chars().next());
                match ch {
                    Some(c) => Value::string(c.to_string()),
                    None => {
                        return self.runtime(format!(
                            "charAt: index {i}, length {} (StringIndexOutOfBoundsException)",
                            java::utf16_len(s)
                        ))
                    }
                }
            }
            ("toLowerCase", 0) => match java::to_lower(s) {
                std::borrow::Cow::Borrowed(_) => Value::Str(s.clone()),
                std::borrow::Cow::Owned(o) => return self.new_str(o),
            },
            ("toUpperCase", 0) => match java::to_upper(s) {
                std::borrow::Cow::Borrowed(_) => Value::Str(s.clone()),
                std::borrow::Cow::Owned(o) => return self.new_str(o),
            },
            ("trim", 0) => {
                let t = java::java_trim(s);
                if t.len() == s.len() {
                    Value::Str(s.clone())
                } else {
                    Value::str(t)
                }
            }
            ("concat", 1) => {
                let x = self.text(&args[0])?;
                return self.new_str(format!("{s}{x}"));
            }
            ("replace", 2) => {
                let from = self.text(&args[0])?;
                let to = self.text(&args[1])?;
                // Bound the result before building it: "".replace("", x)
                // inserts x between every character.
                let worst = if from.is_empty() {
                    (java::utf16_len(s) + 1).saturating_mul(to.len()) + s.len()
                } else {
                    (s.len() / from.len() + 1).saturating_mul(to.len()) + s.len()
                };
                if worst > self.alloc_left() {
                    self.charge(worst)?;
                }
                return self.new_str(s.replace(&*from, &to));
            }
            ("replaceAll" | "replaceFirst", 2) => {
                let re = self.method_regex(call, &args[0], false)?;
                let repl = self.text(&args[1])?;
                self.step((s.len() / 16) as u64)?;
                let worst = (s.len() + 1).saturating_mul(repl.len() + 1) + s.len();
                if worst > self.alloc_left() && repl.len() > 1 {
                    // Only refuse when the worst case could really exceed
                    // the budget; the exact size is charged below.
                    let bound = re.find_iter(s).count().saturating_mul(repl.len()) + s.len();
                    self.charge(bound)?;
                }
                match java::regex_replace(&re, s, &repl, name == "replaceAll") {
                    Ok(out) => return self.new_str(out),
                    Err(e) => return self.runtime(format!("{name}: {e}")),
                }
            }
            ("matches", 1) => {
                let re = self.method_regex(call, &args[0], true)?;
                self.step((s.len() / 16) as u64)?;
                Value::Bool(re.is_match(s))
            }
            ("split", 1 | 2) => {
                let re = self.method_regex(call, &args[0], false)?;
                let limit = match args.get(1) {
                    None => 0,
                    Some(v) => match v.as_index() {
                        Some(l) => l,
                        None => return Ok(None),
                    },
                };
                self.step((s.len() / 16) as u64)?;
                let parts = java::split(&re, s, limit);
                self.charge(parts.len() * 16 + s.len())?;
                // Java returns a String[]; Velocity lets templates use it
                // like a list, and it prints like one here (see docs).
                Value::new_list(parts.into_iter().map(Value::str).collect(), false)
            }
            ("hashCode", 0) => {
                let mut h: i32 = 0;
                for unit in s.encode_utf16() {
                    h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
                }
                Value::Int(i64::from(h))
            }
            ("compareTo", 1) => {
                let Value::Str(x) = &args[0] else {
                    return Ok(None);
                };
                let mut a = s.encode_utf16();
                let mut b = x.encode_utf16();
                loop {
                    match (a.next(), b.next()) {
                        (Some(p), Some(q)) if p == q => continue,
                        (Some(p), Some(q)) => break Value::Int(i64::from(p) - i64::from(q)),
                        _ => {
                            break Value::Int(java::utf16_len(s) as i64 - java::utf16_len(x) as i64)
                        }
                    }
                }
            }
            _ => return Ok(None),
        }))
    }

    fn method_regex(
        &mut self,
        call: &'t MethodCall,
        pattern: &Value,
        whole: bool,
    ) -> R<Arc<regex::Regex>> {
        match &call.pre {
            Pre::Regex(re) => Ok(re.clone()),
            Pre::BadRegex(e) => self.runtime(e.to_string()),
            _ => self.regex(pattern, whole),
        }
    }

    fn list_index(&self, l: &Rc<RefCell<ListObj>>, i: i64, inclusive: bool) -> R<usize> {
        let n = l.borrow().items.len();
        let ok = if inclusive {
            i >= 0 && i as usize <= n
        } else {
            i >= 0 && (i as usize) < n
        };
        if ok {
            Ok(i as usize)
        } else {
            self.runtime(format!(
                "index {i} out of bounds for length {n} (IndexOutOfBoundsException)"
            ))
        }
    }

    fn list_method(
        &mut self,
        l: &Rc<RefCell<ListObj>>,
        name: &str,
        args: &[Value],
    ) -> R<Option<Value>> {
        Ok(Some(match (name, args.len()) {
            // `count()`: the AWS template reference's
            // `$input.path('$.pets').count()`.
            ("size" | "count", 0) => Value::Int(l.borrow().items.len() as i64),
            ("isEmpty", 0) => Value::Bool(l.borrow().items.is_empty()),
            ("get", 1) => {
                let Some(i) = Self::int_arg(args, 0) else {
                    return Ok(None);
                };
                let i = self.list_index(l, i, false)?;
                return Ok(Some(l.borrow().items[i].clone()));
            }
            ("add", 1) => {
                self.charge(16)?;
                l.borrow_mut().items.push(args[0].clone());
                Value::Bool(true)
            }
            ("add", 2) => {
                let Some(i) = Self::int_arg(args, 0) else {
                    return Ok(None);
                };
                let i = self.list_index(l, i, true)?;
                self.charge(16)?;
                l.borrow_mut().items.insert(i, args[1].clone());
                return Ok(None);
            }
            ("addAll", 1) => {
                let Value::List(other) = &args[0] else {
                    return Ok(None);
                };
                let extra = other.borrow().items.clone();
                self.charge(extra.len() * 16)?;
                l.borrow_mut().items.extend(extra);
                Value::Bool(true)
            }
            ("contains", 1) => {
                self.step(l.borrow().items.len() as u64 / 8)?;
                Value::Bool(l.borrow().items.iter().any(|v| java_equals(v, &args[0], 0)))
            }
            ("indexOf", 1) | ("lastIndexOf", 1) => {
                self.step(l.borrow().items.len() as u64 / 8)?;
                let items = &l.borrow().items;
                let found = if name == "indexOf" {
                    items.iter().position(|v| java_equals(v, &args[0], 0))
                } else {
                    items.iter().rposition(|v| java_equals(v, &args[0], 0))
                };
                Value::Int(found.map_or(-1, |i| i as i64))
            }
            ("remove", 1) => match &args[0] {
                // ArrayList.remove(int) when given an integer, remove(Object)
                // otherwise, as Java overloading picks.
                Value::Int(i) => {
                    let i = self.list_index(l, *i, false)?;
                    return Ok(Some(l.borrow_mut().items.remove(i)));
                }
                other => {
                    let pos = l
                        .borrow()
                        .items
                        .iter()
                        .position(|v| java_equals(v, other, 0));
                    match pos {
                        Some(p) => {
                            l.borrow_mut().items.remove(p);
                            Value::Bool(true)
                        }
                        None => Value::Bool(false),
                    }
                }
            },
            ("set", 2) => {
                let Some(i) = Self::int_arg(args, 0) else {
                    return Ok(None);
                };
                let i = self.list_index(l, i, false)?;
                return Ok(Some(std::mem::replace(
                    &mut l.borrow_mut().items[i],
                    args[1].clone(),
                )));
            }
            ("subList", 2) => {
                let (Some(a), Some(b)) = (Self::int_arg(args, 0), Self::int_arg(args, 1)) else {
                    return Ok(None);
                };
                let n = l.borrow().items.len() as i64;
                if a < 0 || b > n || a > b {
                    return self.runtime(format!(
                        "subList({a}, {b}) of a list of {n} (IndexOutOfBoundsException)"
                    ));
                }
                let items = l.borrow().items[a as usize..b as usize].to_vec();
                self.charge(items.len() * 16)?;
                // `JSONArray.subList` is a plain `ArrayList$SubList`: it
                // prints the Java way (`[a, b]`), not as JSON (checked
                // against Velocity 1.7 with json-smart).
                Value::new_list(items, false)
            }
            ("clear", 0) => {
                l.borrow_mut().items.clear();
                return Ok(None);
            }
            _ => return Ok(None),
        }))
    }

    fn map_method(
        &mut self,
        cur: &Value,
        m: &Rc<RefCell<MapObj>>,
        name: &str,
        args: &[Value],
    ) -> R<Option<Value>> {
        Ok(Some(match (name, args.len()) {
            ("get", 1) => {
                let k = self.key_of(&args[0])?;
                return Ok(m.borrow().get(&k).cloned());
            }
            ("getOrDefault", 2) => {
                let k = self.key_of(&args[0])?;
                return Ok(Some(
                    m.borrow()
                        .get(&k)
                        .cloned()
                        .unwrap_or_else(|| args[1].clone()),
                ));
            }
            ("put", 2) => {
                let k = self.key_of(&args[0])?;
                return self.put(cur, k, args[1].clone());
            }
            ("putAll", 1) => {
                let Value::Map(other) = &args[0] else {
                    return Ok(None);
                };
                let entries: Vec<(Arc<str>, Value)> = other.borrow().iter().cloned().collect();
                for (k, v) in entries {
                    self.put(cur, k, v)?;
                }
                return Ok(None);
            }
            ("containsKey", 1) => {
                let k = self.key_of(&args[0])?;
                Value::Bool(m.borrow().contains_key(&k))
            }
            ("containsValue", 1) => {
                self.step(m.borrow().len() as u64 / 8)?;
                Value::Bool(m.borrow().iter().any(|(_, v)| java_equals(v, &args[0], 0)))
            }
            ("keySet", 0) | ("values", 0) | ("entrySet", 0) => {
                let n = m.borrow().len();
                self.charge(n * 32)?;
                let m = m.borrow();
                // Java returns live views; these are copies (see docs).
                let items: Vec<Value> = match name {
                    "keySet" => m.iter().map(|(k, _)| Value::Str(k.clone())).collect(),
                    "values" => m.iter().map(|(_, v)| v.clone()).collect(),
                    _ => m
                        .iter()
                        .map(|(k, v)| Value::Entry(Rc::new((Value::Str(k.clone()), v.clone()))))
                        .collect(),
                };
                Value::new_list(items, false)
            }
            ("size", 0) => Value::Int(m.borrow().len() as i64),
            ("isEmpty", 0) => Value::Bool(m.borrow().len() == 0),
            ("remove", 1) => {
                let k = self.key_of(&args[0])?;
                return Ok(m.borrow_mut().remove(&k));
            }
            ("clear", 0) => {
                m.borrow_mut().clear();
                return Ok(None);
            }
            _ => return Ok(None),
        }))
    }
}

fn number_method(cur: &Value, name: &str, args: &[Value]) -> Option<Value> {
    if !args.is_empty() {
        return match (name, cur, &args[0]) {
            ("compareTo", Value::Int(x), Value::Int(y)) => Some(Value::Int(x.cmp(y) as i64)),
            ("compareTo", Value::Float(x), Value::Float(y)) => {
                x.partial_cmp(y).map(|o| Value::Int(o as i64))
            }
            _ => None,
        };
    }
    match (name, cur) {
        ("intValue" | "longValue", Value::Int(i)) => Some(Value::Int(*i)),
        ("intValue" | "longValue", Value::Float(f)) => Some(Value::Int(*f as i64)),
        ("doubleValue" | "floatValue", v) => v.as_f64().map(Value::Float),
        _ => None,
    }
}

/// `Long.parseLong`: an optional sign and decimal digits, nothing else.
fn parse_java_int(t: &str) -> Option<i64> {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok()
}

/// `Double.parseDouble`: surrounding whitespace allowed, `NaN` and
/// `Infinity` as Java spells them, decimal and exponent forms.
fn parse_java_double(t: &str) -> Option<f64> {
    let t = t.trim_matches(|c: char| c <= ' ');
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let neg = t.starts_with('-');
    match body {
        "NaN" => return Some(f64::NAN),
        "Infinity" => {
            return Some(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        _ => {}
    }
    let body = body.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(body);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = body.parse().ok()?;
    Some(if neg { -v } else { v })
}
