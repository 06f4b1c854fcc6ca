//! The evaluator: walks a compiled template against one request and writes
//! the output into one `String`.
//!
//! Owns: scoping (Velocity 1.7's single context with save/restore around
//! `#foreach` and macro calls), control flow (`#break`, `#stop`), operators,
//! reference resolution, and every budget in [`Limits`]: steps, output
//! bytes, `#foreach` iterations, call depth, and a derived allocation budget.
//! Methods on values live in `methods.rs`, the AWS objects in `aws.rs`.
//! Read first: [`Machine::run`], then `Machine::eval_block` and
//! `Machine::eval_ref`.
//!
//! Null references: AWS evaluates a reference that resolves to null (an
//! undefined variable, a missing key, a method returning null) to the empty
//! string. AWS-recorded in localstack/airspeed `test_templating.snapshot.json`:
//! `Hello $name` with no `$name` prints `Hello ` (Velocity prints `$name`),
//! `#if($undefined)` is true, `!$undefined` is false. That is Velocity 1.7
//! with an `InvalidReferenceEventHandler` answering `""`; this module does
//! the same unless the template was compiled with [`NullReferences::Velocity`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use regex::Regex;

use super::ast::{BinOp, Block, CompiledPath, Expr, Node, Pos, Reference, Seg};
use super::parse::{
    compile_path, compile_regex, VAR_CONTEXT, VAR_FOREACH, VAR_INPUT, VAR_STAGE_VARIABLES,
    VAR_UTIL, VAR_VELOCITY_COUNT, VAR_VELOCITY_HAS_NEXT,
};
use super::value::{self, truthy, ListObj, LoopInfo, MapKind, MapObj, Nesting, Value};
use super::{Input, Limits, NullReferences, Overrides, RenderErrorKind, Template};

/// Stack guard independent of [`Limits::max_depth`]: how many nested
/// blocks, expressions and calls one render may be inside at once. Measured
/// (`tests/templates.rs`, `deep_nesting_is_bounded_on_a_small_stack`): the
/// worst case fits a 1 MiB thread stack in a debug build, whatever
/// `max_depth` says.
pub(crate) const MAX_EVAL_NESTING: usize = 200;

/// [`Limits::max_depth`] is honoured up to this many nested calls.
pub(crate) const MAX_CALL_DEPTH: usize = 100;

/// The allocation budget is this many times [`Limits::max_output_bytes`]
/// (at least [`MIN_ALLOC_BUDGET`]): strings, list and map entries and JSON
/// conversions made during one render are charged against it, so a
/// template that doubles a string in a loop fails instead of exhausting
/// memory.
pub(crate) const ALLOC_FACTOR: usize = 8;
pub(crate) const MIN_ALLOC_BUDGET: usize = 16 << 20;

/// Dynamic regexes and JSONPaths compiled during one render are cached, up
/// to this many each.
const DYNAMIC_CACHE: usize = 64;

/// A failure with the position it happened at.
#[derive(Debug)]
pub(crate) struct Fail {
    pub pos: Pos,
    pub kind: RenderErrorKind,
    pub message: String,
}

pub(crate) type R<T> = Result<T, Fail>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Normal,
    Break,
    Stop,
}

pub(crate) struct Machine<'t> {
    pub tpl: &'t Template,
    pub input: &'t Input<'t>,
    pub limits: &'t Limits,
    pub out: String,
    vars: Vec<Option<Value>>,
    steps: u64,
    alloc_left: usize,
    call_depth: usize,
    max_call_depth: usize,
    nest: usize,
    /// Where evaluation is: the position errors report.
    pub at: Pos,
    stop: bool,
    pub body: Option<Rc<serde_json::Value>>,
    pub body_text: Option<Value>,
    pub params: Option<Value>,
    pub req_override: Option<Value>,
    pub resp_override: Option<Value>,
    regexes: HashMap<Arc<str>, Arc<Regex>>,
    paths: HashMap<Arc<str>, Arc<CompiledPath>>,
}

impl<'t> Machine<'t> {
    pub fn new(tpl: &'t Template, input: &'t Input<'t>, limits: &'t Limits) -> Machine<'t> {
        let mut vars = vec![None; tpl.parsed.var_names.len()];
        vars[VAR_INPUT as usize] = Some(Value::Input);
        vars[VAR_UTIL as usize] = Some(Value::Util);
        vars[VAR_CONTEXT as usize] = Some(Value::Context);
        if tpl.uses_stage_variables {
            let mut map = MapObj::with_capacity(MapKind::Plain, input.stage_variables.len());
            for (k, v) in input.stage_variables {
                map.insert(Arc::from(k.as_str()), Value::str(v));
            }
            vars[VAR_STAGE_VARIABLES as usize] = Some(Value::new_map(map));
        }
        let alloc = limits
            .max_output_bytes
            .saturating_mul(ALLOC_FACTOR)
            .max(MIN_ALLOC_BUDGET);
        Machine {
            tpl,
            input,
            limits,
            out: String::with_capacity(tpl.output_hint.min(limits.max_output_bytes)),
            vars,
            steps: 0,
            alloc_left: alloc,
            call_depth: 0,
            max_call_depth: limits.max_depth.min(MAX_CALL_DEPTH),
            nest: 0,
            at: 0,
            stop: false,
            body: None,
            body_text: None,
            params: None,
            req_override: None,
            resp_override: None,
            regexes: HashMap::new(),
            paths: HashMap::new(),
        }
    }

    /// Renders the whole template; returns the overrides it set.
    pub fn run(&mut self) -> R<Overrides> {
        let tpl = self.tpl;
        self.eval_block(&tpl.parsed.root)?;
        self.overrides()
    }

    // ---- budgets --------------------------------------------------------

    pub fn fail<T>(&self, kind: RenderErrorKind, message: impl Into<String>) -> R<T> {
        Err(Fail {
            pos: self.at,
            kind,
            message: message.into(),
        })
    }

    pub fn runtime<T>(&self, message: impl Into<String>) -> R<T> {
        self.fail(RenderErrorKind::Runtime, message)
    }

    pub fn step(&mut self, n: u64) -> R<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return self.fail(
                RenderErrorKind::LimitExceeded,
                format!("evaluation took more than {} steps", self.limits.max_steps),
            );
        }
        Ok(())
    }

    /// Charges `bytes` of allocation (and a step per 64 bytes of work).
    pub fn charge(&mut self, bytes: usize) -> R<()> {
        match self.alloc_left.checked_sub(bytes) {
            Some(left) => self.alloc_left = left,
            None => {
                return self.fail(
                    RenderErrorKind::LimitExceeded,
                    "the template built more data than its memory budget allows",
                )
            }
        }
        self.step((bytes / 64) as u64)
    }

    pub fn alloc_left(&self) -> usize {
        self.alloc_left
    }

    fn enter(&mut self) -> R<()> {
        self.nest += 1;
        if self.nest > MAX_EVAL_NESTING {
            return self.fail(
                RenderErrorKind::LimitExceeded,
                format!("evaluation nested deeper than {MAX_EVAL_NESTING} levels"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nest -= 1;
    }

    pub fn nesting(&self, _: Nesting) -> Fail {
        Fail {
            pos: self.at,
            kind: RenderErrorKind::Runtime,
            message: format!(
                "a value nested deeper than {} levels (a list or map that contains itself?)",
                value::MAX_VALUE_NESTING
            ),
        }
    }

    pub fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.limits.max_output_bytes {
            return self.fail(
                RenderErrorKind::LimitExceeded,
                format!("output longer than {} bytes", self.limits.max_output_bytes),
            );
        }
        self.out.push_str(s);
        Ok(())
    }

    /// Writes a value's `toString()`. Strings go straight in; other values
    /// are formatted in place and checked afterwards (the formatter itself
    /// stops at the output limit).
    pub fn write_value(&mut self, v: &Value) -> R<()> {
        match v {
            Value::Str(s) => self.write(s),
            Value::Block(id) => self.render_define(*id),
            _ => {
                let limit = self.limits.max_output_bytes;
                let before = self.out.len();
                let r = value::write_display(v, &mut self.out, 0, limit);
                if let Err(e) = r {
                    self.out.truncate(before);
                    return Err(self.text_fail(e));
                }
                if self.out.len() > limit {
                    self.out.truncate(before);
                    return self.write_overflow();
                }
                Ok(())
            }
        }
    }

    fn write_overflow(&self) -> R<()> {
        self.fail(
            RenderErrorKind::LimitExceeded,
            format!("output longer than {} bytes", self.limits.max_output_bytes),
        )
    }

    pub fn text_fail(&self, e: value::TextError) -> Fail {
        match e {
            value::TextError::Nesting => self.nesting(Nesting),
            value::TextError::TooLong => Fail {
                pos: self.at,
                kind: RenderErrorKind::LimitExceeded,
                message: "a value's text is larger than the memory budget".to_owned(),
            },
        }
    }

    /// A value's `toString()` as an owned string, charged to the budget.
    pub fn text(&mut self, v: &Value) -> R<Arc<str>> {
        match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Block(id) => {
                let s = self.render_to_string(&self.tpl.parsed.defines[*id as usize])?;
                Ok(Arc::from(s))
            }
            _ => {
                let mut s = String::new();
                value::write_display(v, &mut s, 0, self.alloc_left)
                    .map_err(|e| self.text_fail(e))?;
                self.charge(s.len())?;
                Ok(Arc::from(s))
            }
        }
    }

    // ---- blocks and nodes ---------------------------------------------

    pub fn eval_block(&mut self, block: &'t Block) -> R<Flow> {
        self.enter()?;
        let r = self.eval_nodes(block);
        self.leave();
        r
    }

    fn eval_nodes(&mut self, block: &'t Block) -> R<Flow> {
        for node in block {
            self.step(1)?;
            let flow = self.eval_node(node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
            if self.stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Normal)
    }

    fn eval_node(&mut self, node: &'t Node) -> R<Flow> {
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Ref(r) => self.render_ref(r)?,
            Node::EscapedRef(r) => {
                self.at = r.pos;
                // Velocity prints `$name` for an escaped reference that has a
                // value and `\$name` for one that has none; under AWS every
                // reference has a value (see the module docs).
                if self.tpl.options.null_references == NullReferences::Velocity
                    && self.eval_ref_raw(r)?.is_none()
                {
                    self.write("\\")?;
                }
                self.write(&r.text)?;
            }
            Node::Set { pos, target, value } => {
                self.at = *pos;
                let v = self.eval(value)?;
                self.at = *pos;
                self.assign(target, v)?;
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (cond, block) in branches {
                    if self.cond(cond)? {
                        return self.eval_block(block);
                    }
                }
                if let Some(block) = otherwise {
                    return self.eval_block(block);
                }
            }
            Node::Foreach {
                pos,
                var,
                iterable,
                body,
            } => return self.foreach(*pos, *var, iterable, body),
            Node::MacroCall {
                pos,
                id,
                args,
                literal,
            } => {
                self.at = *pos;
                return self.call_macro(*id, args, literal);
            }
            Node::Define { var, block } => self.vars[*var as usize] = Some(Value::Block(*block)),
            Node::Break => return Ok(Flow::Break),
            Node::Stop => return Ok(Flow::Stop),
        }
        Ok(Flow::Normal)
    }

    fn render_ref(&mut self, r: &'t Reference) -> R<()> {
        self.at = r.pos;
        match self.eval_ref_raw(r)? {
            Some(v) => self.write_value(&v),
            None => {
                if self.tpl.options.null_references == NullReferences::Velocity && !r.quiet {
                    self.write(&r.text)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn render_define(&mut self, id: u32) -> R<()> {
        self.call_depth += 1;
        if self.call_depth > self.max_call_depth {
            return self.fail(
                RenderErrorKind::LimitExceeded,
                format!("#define blocks nested deeper than {}", self.max_call_depth),
            );
        }
        let tpl = self.tpl;
        let flow = self.eval_block(&tpl.parsed.defines[id as usize]);
        self.call_depth -= 1;
        if flow? == Flow::Stop {
            self.stop = true;
        }
        Ok(())
    }

    /// Renders `block` into a fresh string (interpolated string literals,
    /// `#define` blocks used as values). The output limit applies to it.
    pub fn render_to_string(&mut self, block: &'t Block) -> R<String> {
        let saved = std::mem::take(&mut self.out);
        self.call_depth += 1;
        let flow = if self.call_depth > self.max_call_depth {
            self.fail(
                RenderErrorKind::LimitExceeded,
                format!("#define blocks nested deeper than {}", self.max_call_depth),
            )
        } else {
            self.eval_block(block)
        };
        self.call_depth -= 1;
        let s = std::mem::replace(&mut self.out, saved);
        if flow? == Flow::Stop {
            self.stop = true;
        }
        self.charge(s.len())?;
        Ok(s)
    }

    fn foreach(&mut self, pos: Pos, var: u32, iterable: &'t Expr, body: &'t Block) -> R<Flow> {
        self.at = pos;
        enum Items {
            Range(i64, i64),
            List(Rc<RefCell<ListObj>>),
            Values(Vec<Value>),
        }
        // A range literal is walked without building the list:
        // `#foreach($i in [1..1000000])` costs what its iterations cost.
        let items = match iterable {
            Expr::Range { from, to, .. } => {
                let (a, b) = (self.eval(from)?, self.eval(to)?);
                match (a, b) {
                    (Value::Int(a), Value::Int(b)) => Items::Range(a, b),
                    _ => return Ok(Flow::Normal),
                }
            }
            other => match self.eval(other)? {
                Value::List(l) => Items::List(l),
                Value::Map(m) => {
                    // Velocity iterates a map's values.
                    let m = m.borrow();
                    self.step(m.len() as u64 / 8)?;
                    Items::Values(m.iter().map(|(_, v)| v.clone()).collect())
                }
                _ => return Ok(Flow::Normal),
            },
        };
        let len = |items: &Items| -> usize {
            match items {
                Items::Range(a, b) => (a.abs_diff(*b))
                    .saturating_add(1)
                    .try_into()
                    .unwrap_or(usize::MAX),
                Items::List(l) => l.borrow().items.len(),
                Items::Values(v) => v.len(),
            }
        };
        let v = var as usize;
        let saved = [
            self.vars[v].take(),
            self.vars[VAR_FOREACH as usize].take(),
            self.vars[VAR_VELOCITY_COUNT as usize].take(),
            self.vars[VAR_VELOCITY_HAS_NEXT as usize].take(),
        ];
        let mut flow = Flow::Normal;
        let mut i = 0usize;
        loop {
            // AWS caps #foreach at 1000 iterations (limits.md); Velocity's
            // `directive.foreach.maxloops` stops the loop quietly there.
            if i >= self.limits.max_iterations {
                break;
            }
            // Every iteration is a step, whatever its body costs: three
            // nested loops over nothing are 10^9 iterations.
            self.step(1)?;
            let n = len(&items);
            if i >= n {
                break;
            }
            let item = match &items {
                Items::Range(a, b) => {
                    let off = i as i64;
                    Value::Int(if a <= b { a + off } else { a - off })
                }
                Items::List(l) => l.borrow().items[i].clone(),
                Items::Values(vals) => vals[i].clone(),
            };
            let has_next = i + 1 < n;
            self.vars[v] = Some(item);
            self.vars[VAR_FOREACH as usize] = Some(Value::Loop(LoopInfo { index: i, has_next }));
            self.vars[VAR_VELOCITY_COUNT as usize] = Some(Value::Int(i as i64 + 1));
            self.vars[VAR_VELOCITY_HAS_NEXT as usize] = Some(Value::Bool(has_next));
            match self.eval_block(body)? {
                Flow::Normal => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
            if self.stop {
                flow = Flow::Stop;
                break;
            }
            i += 1;
        }
        let [a, b, c, d] = saved;
        self.vars[v] = a;
        self.vars[VAR_FOREACH as usize] = b;
        self.vars[VAR_VELOCITY_COUNT as usize] = c;
        self.vars[VAR_VELOCITY_HAS_NEXT as usize] = d;
        Ok(flow)
    }

    fn call_macro(&mut self, id: usize, args: &'t [Expr], literal: &'t str) -> R<Flow> {
        let tpl = self.tpl;
        let Some(def) = &tpl.parsed.macros[id] else {
            self.write(literal)?;
            return Ok(Flow::Normal);
        };
        if self.call_depth >= self.max_call_depth {
            return self.fail(
                RenderErrorKind::LimitExceeded,
                format!("macro calls nested deeper than {}", self.max_call_depth),
            );
        }
        // Arguments are evaluated once, before the call (Velocity 2
        // semantics; 1.7 passes them by name, see docs/templates.md).
        let mut values = Vec::with_capacity(args.len());
        for a in args {
            values.push(self.eval(a)?);
        }
        let mut saved = Vec::with_capacity(def.params.len());
        let mut values = values.into_iter();
        for p in &def.params {
            let old = std::mem::replace(&mut self.vars[*p as usize], values.next());
            saved.push((*p, old));
        }
        self.call_depth += 1;
        let flow = self.eval_block(&def.body);
        self.call_depth -= 1;
        for (p, old) in saved.into_iter().rev() {
            self.vars[p as usize] = old;
        }
        flow
    }

    // ---- assignment -----------------------------------------------------

    fn assign(&mut self, target: &'t Reference, v: Value) -> R<()> {
        // Velocity 1.7 (`directive.set.null.allowed=false`): a null right
        // side leaves the left side as it was.
        if v.is_null() {
            return Ok(());
        }
        let Some((last, init)) = target.segs.split_last() else {
            self.vars[target.root as usize] = Some(v);
            return Ok(());
        };
        let Some(mut cur) = self.var_value(target.root) else {
            return Ok(());
        };
        for seg in init {
            match self.eval_seg(&cur, seg)? {
                Some(next) if !next.is_null() => cur = next,
                _ => return Ok(()),
            }
        }
        match last {
            Seg::Prop { pos, name } => {
                self.at = *pos;
                self.put(&cur, name.clone(), v).map(drop)
            }
            Seg::Index { pos, index } => {
                let key = self.eval(index)?;
                self.at = *pos;
                match &cur {
                    Value::List(l) => {
                        let Some(i) = key.as_index() else {
                            return Ok(());
                        };
                        let mut l = l.borrow_mut();
                        let n = l.items.len() as i64;
                        let i = if i < 0 { i + n } else { i };
                        if i < 0 || i >= n {
                            drop(l);
                            return self.runtime(format!("index {i} out of bounds for length {n}"));
                        }
                        l.items[i as usize] = v;
                        Ok(())
                    }
                    _ => {
                        let key = self.key_of(&key)?;
                        self.put(&cur, key, v).map(drop)
                    }
                }
            }
            Seg::Method(_) => Ok(()),
        }
    }

    pub fn key_of(&mut self, v: &Value) -> R<Arc<str>> {
        self.text(v)
    }

    /// `Map.put` (and `#set($map.key = ...)`), with the AWS rule that an
    /// override is applied at most once.
    pub fn put(&mut self, target: &Value, key: Arc<str>, v: Value) -> R<Option<Value>> {
        let Value::Map(m) = target else {
            return Ok(None);
        };
        self.charge(key.len() + 32)?;
        let is_status = &*key == "status"
            && matches!(&self.resp_override, Some(Value::Map(r)) if Rc::ptr_eq(r, m));
        if is_status && status_of(&v).is_none() {
            let mut text = String::new();
            let _ = value::write_display(&v, &mut text, 0, 256);
            return self.fail(
                RenderErrorKind::InvalidOverride,
                format!("$context.responseOverride.status is not an HTTP status: {text:?}"),
            );
        }
        let mut m = m.borrow_mut();
        if m.kind == MapKind::Override && m.contains_key(&key) {
            drop(m);
            // "Overrides are final. An override may only be applied to each
            // parameter once ... API Gateway returns a 5XX response." (AWS,
            // apigateway-override-request-response-parameters)
            return self.fail(
                RenderErrorKind::InvalidOverride,
                format!("override {key:?} applied more than once"),
            );
        }
        Ok(m.insert(key, v))
    }

    // ---- references ---------------------------------------------------

    fn var_value(&self, id: u32) -> Option<Value> {
        self.vars[id as usize].clone()
    }

    /// The value of a reference, or `None` when it resolves to null at any
    /// step (Velocity stops there and asks the invalid-reference handler).
    pub fn eval_ref_raw(&mut self, r: &'t Reference) -> R<Option<Value>> {
        self.at = r.pos;
        // A variable holding null (a `#foreach` over a JSON list with a
        // `null` in it) is a null reference, as an undefined one.
        let Some(mut cur) = self.var_value(r.root).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        for seg in &r.segs {
            self.step(1)?;
            match self.eval_seg(&cur, seg)? {
                Some(next) if !next.is_null() => cur = next,
                _ => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// A reference as an expression value: null becomes `""` under AWS.
    fn eval_ref(&mut self, r: &'t Reference) -> R<Value> {
        Ok(match self.eval_ref_raw(r)? {
            Some(v) => v,
            None => self.null_reference(),
        })
    }

    pub fn null_reference(&self) -> Value {
        match self.tpl.options.null_references {
            NullReferences::Aws => Value::Str(self.tpl.empty.clone()),
            NullReferences::Velocity => Value::Null,
        }
    }

    fn eval_seg(&mut self, cur: &Value, seg: &'t Seg) -> R<Option<Value>> {
        match seg {
            Seg::Prop { pos, name } => {
                self.at = *pos;
                self.get_prop(cur, name)
            }
            Seg::Index { pos, index } => {
                let key = self.eval(index)?;
                self.at = *pos;
                self.get_index(cur, &key)
            }
            Seg::Method(call) => {
                let mut args = Vec::with_capacity(call.args.len());
                for a in &call.args {
                    args.push(self.eval(a)?);
                }
                self.at = call.pos;
                self.call_method(cur, call, args)
            }
        }
    }

    /// `$x.name`: a map key, a Java bean property (`$foreach.index`,
    /// `$entry.key`, `$s.empty`), or an AWS object's member.
    pub fn get_prop(&mut self, cur: &Value, name: &str) -> R<Option<Value>> {
        Ok(match cur {
            Value::Map(m) => m.borrow().get(name).cloned(),
            Value::Loop(info) => loop_prop(info, name),
            Value::Entry(e) => match name {
                "key" => Some(e.0.clone()),
                "value" => Some(e.1.clone()),
                _ => None,
            },
            Value::Str(s) if name == "empty" => Some(Value::Bool(s.is_empty())),
            Value::List(l) if name == "empty" => Some(Value::Bool(l.borrow().items.is_empty())),
            Value::Input => self.input_prop(name)?,
            Value::Context => self.context_prop(None, name),
            Value::ContextPath(prefix) => {
                let prefix = prefix.clone();
                self.context_prop(Some(&prefix), name)
            }
            _ => None,
        })
    }

    /// `$x[key]`: list index (negative counts from the end, as in Velocity
    /// 1.7), map key, or context member.
    fn get_index(&mut self, cur: &Value, key: &Value) -> R<Option<Value>> {
        match cur {
            Value::List(l) => {
                let Some(i) = key.as_index() else {
                    return Ok(None);
                };
                let l = l.borrow();
                let n = l.items.len() as i64;
                let i = if i < 0 { i + n } else { i };
                Ok((0..n).contains(&i).then(|| l.items[i as usize].clone()))
            }
            Value::Map(_) | Value::Context | Value::ContextPath(_) | Value::Input => {
                let key = self.key_of(key)?;
                self.get_prop(cur, &key)
            }
            _ => Ok(None),
        }
    }

    // ---- expressions ----------------------------------------------------

    pub fn eval(&mut self, e: &'t Expr) -> R<Value> {
        self.enter()?;
        let r = self.eval_inner(e);
        self.leave();
        r
    }

    fn eval_inner(&mut self, e: &'t Expr) -> R<Value> {
        self.step(1)?;
        Ok(match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(i) => Value::Int(*i),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Interp { pos, body } => {
                self.at = *pos;
                Value::string(self.render_to_string(body)?)
            }
            Expr::Ref(r) => self.eval_ref(r)?,
            Expr::List(items) => {
                self.charge(items.len() * 16 + 32)?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.eval(item)?);
                }
                Value::new_list(out, false)
            }
            Expr::Range { pos, from, to } => {
                let (a, b) = (self.eval(from)?, self.eval(to)?);
                self.at = *pos;
                let (Value::Int(a), Value::Int(b)) = (a, b) else {
                    return Ok(Value::Null);
                };
                let n = usize::try_from(a.abs_diff(b))
                    .unwrap_or(usize::MAX)
                    .saturating_add(1);
                self.charge(n.saturating_mul(16))?;
                self.step(n as u64 / 4)?;
                let items: Vec<Value> = if a <= b {
                    (a..=b).map(Value::Int).collect()
                } else {
                    (b..=a).rev().map(Value::Int).collect()
                };
                Value::new_list(items, false)
            }
            Expr::Map(entries) => {
                self.charge(entries.len() * 48 + 32)?;
                let mut map = MapObj::with_capacity(MapKind::Plain, entries.len());
                for (k, v) in entries {
                    let k = self.eval(k)?;
                    let k = self.key_of(&k)?;
                    let v = self.eval(v)?;
                    map.insert(k, v);
                }
                Value::new_map(map)
            }
            Expr::Not(inner) => Value::Bool(!self.cond(inner)?),
            Expr::Neg { pos, expr } => {
                let v = self.eval(expr)?;
                self.at = *pos;
                match v {
                    Value::Int(i) => i
                        .checked_neg()
                        .map_or(Value::Float(-(i as f64)), Value::Int),
                    Value::Float(f) => Value::Float(-f),
                    _ => Value::Null,
                }
            }
            Expr::Bin { pos, op, lhs, rhs } => self.binary(*pos, *op, lhs, rhs)?,
        })
    }

    /// An expression as a condition (`#if`, `#elseif`, `!`, `&&`, `||`),
    /// as Velocity 1.7 evaluates one: a reference by its value (null is
    /// false; under AWS's null handling it is `""`, which is true), `true`
    /// and `false`, comparisons and logic by their result; any other node —
    /// a string, number, list or map literal, a range, arithmetic — is
    /// false without being evaluated (`SimpleNode.evaluate`), so
    /// `#if("$!x")` never holds, on AWS as here.
    fn cond(&mut self, e: &'t Expr) -> R<bool> {
        match e {
            Expr::Bool(b) => Ok(*b),
            Expr::Ref(r) => {
                let v = self.eval_ref(r)?;
                Ok(truthy(&v))
            }
            Expr::Not(inner) => Ok(!self.cond(inner)?),
            Expr::Bin {
                op: BinOp::And,
                lhs,
                rhs,
                ..
            } => Ok(self.cond(lhs)? && self.cond(rhs)?),
            Expr::Bin {
                op: BinOp::Or,
                lhs,
                rhs,
                ..
            } => Ok(self.cond(lhs)? || self.cond(rhs)?),
            Expr::Bin {
                op: BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge,
                ..
            } => {
                let v = self.eval(e)?;
                Ok(truthy(&v))
            }
            _ => Ok(false),
        }
    }

    fn binary(&mut self, pos: Pos, op: BinOp, lhs: &'t Expr, rhs: &'t Expr) -> R<Value> {
        // `||` and `&&` short-circuit, as Velocity's do, and take their
        // operands as conditions.
        match op {
            BinOp::Or => return Ok(Value::Bool(self.cond(lhs)? || self.cond(rhs)?)),
            BinOp::And => return Ok(Value::Bool(self.cond(lhs)? && self.cond(rhs)?)),
            _ => {}
        }
        let a = self.eval(lhs)?;
        let b = self.eval(rhs)?;
        self.at = pos;
        Ok(match op {
            // Answered above, before either side was evaluated.
            BinOp::Or | BinOp::And => Value::Bool(false),
            BinOp::Eq | BinOp::Ne => {
                let eq =
                    value::loose_eq(&a, &b, 0, self.alloc_left).map_err(|e| self.text_fail(e))?;
                Value::Bool(eq == (op == BinOp::Eq))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ord = match (&a, &b) {
                    (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
                    // Velocity 1.7 compares numbers only (strings as
                    // `Comparable` came with 2.0): false, below.
                    (Value::Str(_), _) | (_, Value::Str(_)) => None,
                    _ => match (a.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => x.partial_cmp(&y),
                        // Velocity 1.7 compares numbers only; anything else
                        // logs an error and is false.
                        _ => None,
                    },
                };
                let Some(ord) = ord else {
                    return Ok(Value::Bool(false));
                };
                Value::Bool(match op {
                    BinOp::Lt => ord.is_lt(),
                    BinOp::Le => ord.is_le(),
                    BinOp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            BinOp::Add => match (&a, &b) {
                (Value::Str(_), _) | (_, Value::Str(_)) => {
                    // Velocity concatenates when either side is a string.
                    let x = self.text(&a)?;
                    let y = self.text(&b)?;
                    self.charge(x.len() + y.len())?;
                    let mut s = String::with_capacity(x.len() + y.len());
                    s.push_str(&x);
                    s.push_str(&y);
                    Value::string(s)
                }
                _ => arith(op, &a, &b),
            },
            _ => arith(op, &a, &b),
        })
    }

    // ---- overrides -------------------------------------------------------

    fn overrides(&mut self) -> R<Overrides> {
        let mut o = Overrides::default();
        if let Some(Value::Map(resp)) = self.resp_override.clone() {
            let resp = resp.borrow();
            match resp.get("status") {
                None | Some(Value::Null) => {}
                Some(v) => {
                    match status_of(v) {
                        Some(s) => o.status = Some(s),
                        None => {
                            let mut text = String::new();
                            let _ = value::write_display(v, &mut text, 0, 256);
                            return self.fail(
                                RenderErrorKind::InvalidOverride,
                                format!("$context.responseOverride.status is not an HTTP status: {text:?}"),
                            );
                        }
                    }
                }
            }
            o.response_headers = self.override_pairs(resp.get("header"))?;
        }
        if let Some(Value::Map(req)) = self.req_override.clone() {
            let req = req.borrow();
            o.request_headers = self.override_pairs(req.get("header"))?;
            o.request_query = self.override_pairs(req.get("querystring"))?;
            o.request_path = self.override_pairs(req.get("path"))?;
        }
        Ok(o)
    }

    fn override_pairs(&mut self, map: Option<&Value>) -> R<Vec<(String, String)>> {
        let Some(Value::Map(m)) = map else {
            return Ok(Vec::new());
        };
        let entries: Vec<(Arc<str>, Value)> = m.borrow().iter().cloned().collect();
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if v.is_null() {
                continue;
            }
            let v = self.text(&v)?;
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }

    // ---- caches for non-literal arguments -----------------------------

    /// A regex for a method call: compiled at compile time when the pattern
    /// was a literal, else compiled now and cached for this render.
    pub fn regex(&mut self, pattern: &Value, whole: bool) -> R<Arc<Regex>> {
        let text = self.text(pattern)?;
        let key: Arc<str> = if whole {
            Arc::from(format!("\u{0}{text}"))
        } else {
            text.clone()
        };
        if let Some(re) = self.regexes.get(&key) {
            return Ok(re.clone());
        }
        self.step(text.len() as u64 + 100)?;
        let re = match compile_regex(&text, whole) {
            Ok(re) => Arc::new(re),
            Err(e) => return self.runtime(e),
        };
        if self.regexes.len() < DYNAMIC_CACHE {
            self.regexes.insert(key, re.clone());
        }
        Ok(re)
    }

    pub fn json_path(&mut self, path: &Value) -> R<Arc<CompiledPath>> {
        let text = self.text(path)?;
        if let Some(p) = self.paths.get(&text) {
            return Ok(p.clone());
        }
        self.step(text.len() as u64 + 100)?;
        let p = match compile_path(&text) {
            Ok(p) => Arc::new(p),
            Err(e) => return self.runtime(format!("invalid JSONPath {text:?}: {e}")),
        };
        if self.paths.len() < DYNAMIC_CACHE {
            self.paths.insert(text, p.clone());
        }
        Ok(p)
    }
}

/// An HTTP status from `$context.responseOverride.status`: an integer (or
/// its text) from 100 to 599.
fn status_of(v: &Value) -> Option<u16> {
    let status = match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        Value::Float(f) if f.fract() == 0.0 => u16::try_from(*f as i64).ok(),
        Value::Str(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    }?;
    (100..=599).contains(&status).then_some(status)
}

fn loop_prop(info: &LoopInfo, name: &str) -> Option<Value> {
    Some(match name {
        "index" => Value::Int(info.index as i64),
        "count" => Value::Int(info.index as i64 + 1),
        "hasNext" => Value::Bool(info.has_next),
        "first" => Value::Bool(info.index == 0),
        "last" => Value::Bool(!info.has_next),
        _ => return None,
    })
}

pub(crate) fn loop_method(info: &LoopInfo, name: &str) -> Option<Value> {
    let prop = match name {
        "getIndex" => "index",
        "getCount" => "count",
        "hasNext" => "hasNext",
        "isFirst" => "first",
        "isLast" => "last",
        _ => return None,
    };
    loop_prop(info, prop)
}

/// Java arithmetic: integers stay integers (division truncates, `%` keeps
/// the dividend's sign), overflow widens to a double (Velocity widens to
/// `BigInteger`; see docs), anything with a double is a double, division by
/// zero and non-numbers give null.
pub(crate) fn arith(op: BinOp, a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div => {
                    if y == 0 {
                        return Value::Null;
                    }
                    x.checked_div(y)
                }
                BinOp::Mod => {
                    if y == 0 {
                        return Value::Null;
                    }
                    x.checked_rem(y)
                }
                _ => return Value::Null,
            };
            match r {
                Some(v) => Value::Int(v),
                None => arith(op, &Value::Float(x as f64), &Value::Float(y as f64)),
            }
        }
        _ => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Value::Null;
            };
            Value::Float(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => {
                    if y == 0.0 {
                        return Value::Null;
                    }
                    x / y
                }
                BinOp::Mod => {
                    if y == 0.0 {
                        return Value::Null;
                    }
                    x % y
                }
                _ => return Value::Null,
            })
        }
    }
}
