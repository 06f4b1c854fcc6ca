//! The API Gateway objects a template sees: `$input`, `$util`, `$context`
//! (with the writable `requestOverride`/`responseOverride` maps) and
//! `$stageVariables` (a plain map, built in `eval.rs`).
//!
//! Owns: what each member returns, following the AWS mapping-template
//! reference and the quirks AWS was recorded with (reference §2.1, §2.3).
//! JSONPath is `serde_json_path` (RFC 9535) behind a Jayway-compatible
//! front (`parse::compile_path`). Read first: [`Machine::input_method`].

use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::ast::{CompiledPath, MethodCall, Pre};
use super::eval::{Fail, Machine, R};
use super::java;
use super::value::{from_json, MapKind, MapObj, Value};
use super::RenderErrorKind;

/// Java's `Base64.getDecoder()` accepts input with or without `=` padding.
const BASE64_DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl<'t> Machine<'t> {
    /// `$input.body`, `$input.params`.
    pub(crate) fn input_prop(&mut self, name: &str) -> R<Option<Value>> {
        Ok(match name {
            "body" => Some(self.body_text()?),
            "params" => Some(self.all_params()?),
            _ => None,
        })
    }

    /// `$input.body`: the payload as text. AWS-recorded: an empty body
    /// reads as `{}` (LocalStack `test_input_body_formatting`).
    fn body_text(&mut self) -> R<Value> {
        if let Some(v) = &self.body_text {
            return Ok(v.clone());
        }
        let v = if self.input.body.is_empty() {
            Value::str("{}")
        } else {
            let s = String::from_utf8_lossy(self.input.body).into_owned();
            self.charge(s.len())?;
            Value::string(s)
        };
        self.body_text = Some(v.clone());
        Ok(v)
    }

    /// The body parsed as JSON, once per render. An empty (or blank) body
    /// is `{}`; anything else that is not JSON fails the render with
    /// [`RenderErrorKind::InvalidJsonBody`] (AWS answers 400 "Could not
    /// parse request body into json").
    fn body_json(&mut self) -> R<Rc<serde_json::Value>> {
        if let Some(b) = &self.body {
            return Ok(b.clone());
        }
        let bytes = self.input.body;
        self.charge(bytes.len().saturating_mul(3))?;
        let v = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            match serde_json::from_slice(bytes) {
                Ok(v) => v,
                Err(e) => {
                    return self.fail(
                        RenderErrorKind::InvalidJsonBody,
                        format!("Could not parse request body into json: {e}"),
                    )
                }
            }
        };
        let rc = Rc::new(v);
        self.body = Some(rc.clone());
        Ok(rc)
    }

    /// JSON → template value, charging the budget as it goes.
    pub(crate) fn convert(&mut self, v: &serde_json::Value) -> R<Value> {
        let left = self.alloc_left();
        let mut used = 0usize;
        let converted = from_json(v, &mut |n| {
            used = used.saturating_add(n);
            used <= left
        });
        self.charge(used)?;
        match converted {
            Some(v) => Ok(v),
            None => Err(Fail {
                pos: self.at,
                kind: RenderErrorKind::LimitExceeded,
                message: "JSON value too large or too deeply nested for the memory budget"
                    .to_owned(),
            }),
        }
    }

    pub(crate) fn input_method(
        &mut self,
        call: &'t MethodCall,
        args: &[Value],
    ) -> R<Option<Value>> {
        match (&*call.name, args.len()) {
            (name @ ("path" | "json"), 1) => {
                let path: Arc<CompiledPath> = match &call.pre {
                    Pre::Path(p) => p.clone(),
                    _ => self.json_path(&args[0])?,
                };
                let body = self.body_json()?;
                let nodes = path.path.query(&body);
                self.step(nodes.len() as u64)?;
                if name == "json" {
                    // `$input.json(x)` is JSON text: a definite path gives
                    // the one value, any other path the list of matches.
                    let text = if path.definite {
                        match nodes.first() {
                            Some(v) => serde_json::to_string(v),
                            // UNVERIFIED on AWS; see docs/templates.md.
                            None => return Ok(Some(Value::str(""))),
                        }
                    } else {
                        serde_json::to_string(&nodes.all())
                    };
                    return match text {
                        Ok(t) => {
                            self.charge(t.len())?;
                            Ok(Some(Value::string(t)))
                        }
                        Err(e) => self.runtime(format!("$input.json: {e}")),
                    };
                }
                // `$input.path(x)` is a value: maps, JSON lists, scalars.
                if path.definite {
                    return match nodes.first() {
                        Some(v) => Ok(Some(self.convert(v)?)),
                        None => Ok(None),
                    };
                }
                let all = nodes.all();
                let mut items = Vec::with_capacity(all.len());
                for v in all {
                    items.push(self.convert(v)?);
                }
                Ok(Some(Value::new_list(items, true)))
            }
            ("params", 0) => Ok(Some(self.all_params()?)),
            ("params", 1) => {
                let name = self.text(&args[0])?;
                Ok(Some(self.param(&name)))
            }
            ("getBody", 0) => Ok(Some(self.body_text()?)),
            _ => Ok(None),
        }
    }

    /// `$input.params('x')`: path, then query string, then header (by name
    /// regardless of case); `""` when there is none.
    fn param(&self, name: &str) -> Value {
        let input = self.input;
        if let Some((_, v)) = input.path.iter().rev().find(|(k, _)| k == name) {
            return Value::str(v);
        }
        if let Some((_, v)) = input.query.iter().rev().find(|(k, _)| k == name) {
            return Value::str(v);
        }
        if let Some((_, v)) = input
            .headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            return Value::str(v);
        }
        Value::str("")
    }

    /// `$input.params()`: `{path={...}, querystring={...}, header={...}}`,
    /// built once per render. Repeated query keys and headers keep their
    /// first position and their last value.
    fn all_params(&mut self) -> R<Value> {
        if let Some(p) = &self.params {
            return Ok(p.clone());
        }
        let input = self.input;
        let pairs = [
            ("path", input.path, MapKind::Plain),
            ("querystring", input.query, MapKind::Plain),
            ("header", input.headers, MapKind::Headers),
        ];
        let mut outer = MapObj::with_capacity(MapKind::Plain, 3);
        for (name, list, kind) in pairs {
            let bytes: usize = list.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
            self.charge(bytes)?;
            let mut map = MapObj::with_capacity(kind, list.len());
            for (k, v) in list {
                map.insert(Arc::from(k.as_str()), Value::str(v));
            }
            outer.insert(Arc::from(name), Value::new_map(map));
        }
        let v = Value::new_map(outer);
        self.params = Some(v.clone());
        Ok(v)
    }

    /// `$context.name` (`prefix` is `None`) or `$context.prefix.name`: the
    /// override maps, a flattened context value, or a prefix of some
    /// (`$context.identity`). Unknown names are null.
    pub(crate) fn context_prop(&mut self, prefix: Option<&str>, name: &str) -> Option<Value> {
        if prefix.is_none() {
            match name {
                "requestOverride" => return Some(self.request_override()),
                "responseOverride" => return Some(self.response_override()),
                _ => {}
            }
        }
        let key = match prefix {
            None => name.to_owned(),
            Some(p) => format!("{p}.{name}"),
        };
        let context = self.input.context;
        if let Some(v) = context.get(&key) {
            // AWS gives the epoch as a number (`$context.requestTimeEpoch > 0`
            // is true there); everything else is a string.
            if key == "requestTimeEpoch" {
                if let Ok(n) = v.parse::<i64>() {
                    return Some(Value::Int(n));
                }
            }
            return Some(Value::str(v));
        }
        let dotted = format!("{key}.");
        let has_children = context
            .range::<str, _>((Bound::Included(dotted.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&dotted));
        has_children.then(|| Value::ContextPath(Arc::from(key)))
    }

    /// `$context.requestOverride`: `{header={}, path={}, querystring={}}`,
    /// each written at most once per key.
    fn request_override(&mut self) -> Value {
        if let Some(v) = &self.req_override {
            return v.clone();
        }
        let mut m = MapObj::with_capacity(MapKind::Plain, 3);
        for k in ["header", "path", "querystring"] {
            m.insert(Arc::from(k), Value::new_map(MapObj::new(MapKind::Override)));
        }
        let v = Value::new_map(m);
        self.req_override = Some(v.clone());
        v
    }

    /// `$context.responseOverride`: `{header={}}` plus `status` once set.
    fn response_override(&mut self) -> Value {
        if let Some(v) = &self.resp_override {
            return v.clone();
        }
        let mut m = MapObj::with_capacity(MapKind::Override, 2);
        m.insert(
            Arc::from("header"),
            Value::new_map(MapObj::new(MapKind::Override)),
        );
        let v = Value::new_map(m);
        self.resp_override = Some(v.clone());
        v
    }

    /// `$util.*`.
    pub(crate) fn util_method(&mut self, name: &str, args: &[Value]) -> R<Option<Value>> {
        let [arg] = args else {
            return Ok(None);
        };
        if arg.is_null() {
            return Ok(None);
        }
        let s = self.text(arg)?;
        self.step((s.len() / 32) as u64)?;
        let out = match name {
            "escapeJavaScript" => {
                let mut out = String::with_capacity(s.len() + s.len() / 8 + 8);
                java::escape_javascript(&s, &mut out);
                out
            }
            "urlEncode" => {
                let mut out = String::with_capacity(s.len() + s.len() / 4 + 8);
                java::url_encode(&s, &mut out);
                out
            }
            "urlDecode" => match java::url_decode(&s) {
                Ok(out) => out,
                Err(e) => return self.runtime(e),
            },
            "base64Encode" => base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            "base64Decode" => match BASE64_DECODER.decode(s.as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => return self.runtime(format!("base64Decode: {e}")),
            },
            "parseJson" => {
                self.charge(s.len().saturating_mul(2))?;
                return match serde_json::from_str::<serde_json::Value>(&s) {
                    Ok(v) => Ok(Some(self.convert(&v)?)),
                    Err(e) => self.runtime(format!("parseJson: {e}")),
                };
            }
            _ => return Ok(None),
        };
        self.charge(out.len())?;
        Ok(Some(Value::string(out)))
    }
}
