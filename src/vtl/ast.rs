//! The compiled form of a template: what [`super::parse`] builds and
//! [`super::eval`] walks.
//!
//! Owns: node and expression types only. Everything here is immutable and
//! `Send + Sync` (strings are `Arc<str>`, precompiled regexes and JSONPaths
//! are plain data), so one compiled template serves every shard.
//! Read first: [`Node`], then [`Expr`] and [`Reference`].

use std::sync::Arc;

use regex::Regex;
use serde_json_path::JsonPath;

/// Byte offset into the template source; turned into line and column only
/// when an error is reported.
pub(crate) type Pos = u32;

/// Index of a variable name (names are interned at compile time, so the
/// evaluator keeps variables in a flat vector instead of hashing names).
pub(crate) type VarId = u32;

pub(crate) type Block = Vec<Node>;

#[derive(Debug)]
pub(crate) enum Node {
    Text(Arc<str>),
    /// `$ref` in text: renders the value.
    Ref(Box<Reference>),
    /// `\$ref`: renders the reference's source text (and, in Velocity mode,
    /// keeps the backslash when the value is null).
    EscapedRef(Box<Reference>),
    Set {
        pos: Pos,
        target: Box<Reference>,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
    },
    Foreach {
        pos: Pos,
        var: VarId,
        iterable: Expr,
        body: Block,
    },
    /// `#name(args)`; a name no `#macro` defines prints `literal` (AWS
    /// prints unknown directives such as `#evaluate(...)` verbatim).
    MacroCall {
        pos: Pos,
        id: usize,
        args: Vec<Expr>,
        literal: Arc<str>,
    },
    Define {
        var: VarId,
        block: u32,
    },
    Break,
    Stop,
}

#[derive(Debug)]
pub(crate) struct MacroDef {
    pub params: Vec<VarId>,
    pub body: Block,
}

/// `$root.seg.seg(...)[...]` with its source text (printed for escaped
/// and, in Velocity mode, unresolved references).
#[derive(Debug)]
pub(crate) struct Reference {
    pub pos: Pos,
    pub text: Arc<str>,
    pub quiet: bool,
    pub root: VarId,
    pub segs: Vec<Seg>,
}

#[derive(Debug)]
pub(crate) enum Seg {
    Prop { pos: Pos, name: Arc<str> },
    Method(Box<MethodCall>),
    Index { pos: Pos, index: Expr },
}

#[derive(Debug)]
pub(crate) struct MethodCall {
    pub pos: Pos,
    pub name: Arc<str>,
    pub args: Vec<Expr>,
    /// Work done at compile time when the first argument is a literal.
    pub pre: Pre,
}

/// Compile-time parsing of literal method arguments, so a render never
/// parses a JSONPath or regex it has seen before.
#[derive(Debug, Default)]
pub(crate) enum Pre {
    #[default]
    None,
    /// `$input.path('...')` / `$input.json('...')`.
    Path(Arc<CompiledPath>),
    /// `replaceAll`, `replaceFirst`, `matches`, `split` with a literal pattern.
    Regex(Arc<Regex>),
    /// A literal regex that does not compile: the error is raised when the
    /// method actually runs on a string (Java throws at that point too).
    BadRegex(Arc<str>),
}

/// A JSONPath ready to run, and whether Jayway would treat it as definite
/// (one value) or indefinite (a list of matches).
#[derive(Debug)]
pub(crate) struct CompiledPath {
    pub path: JsonPath,
    pub definite: bool,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    /// A double-quoted string containing `$` or `#`: rendered as a template.
    Interp {
        pos: Pos,
        body: Block,
    },
    Ref(Box<Reference>),
    List(Vec<Expr>),
    Range {
        pos: Pos,
        from: Box<Expr>,
        to: Box<Expr>,
    },
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg {
        pos: Pos,
        expr: Box<Expr>,
    },
    Bin {
        pos: Pos,
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}
