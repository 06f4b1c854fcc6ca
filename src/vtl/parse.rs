//! Velocity 1.7 syntax → [`ast`](super::ast): a hand-written, scannerless
//! recursive-descent parser.
//!
//! Owns: every syntax decision (what is a reference, a directive, plain
//! text), Velocity 1.7's whitespace rule for directives, escapes, and the
//! compile-time work on literal arguments (JSONPath, regex). It never
//! panics and bounds its own recursion ([`MAX_NESTING`]), so any input
//! either compiles or yields a located error.
//! Read first: [`parse`], then `Parser::block` and `Parser::hash`.
//!
//! Whitespace: Velocity 1.7 (the version AWS runs) eats `[ \t]*` plus one
//! newline after the `)` that closes a directive's arguments and after
//! `#else`/`#end`; it keeps the indentation in front of a directive, except
//! in front of `#set` when the blanks begin a run of text (its token takes
//! them).
//! AWS-recorded in localstack/airspeed `test_templating.snapshot.json`
//! (`test_if_whitespace_and_newlines_ignored`,
//! `test_multiline_dict_in_set_statement`).

use std::collections::HashMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use serde_json_path::JsonPath;

use super::ast::{
    BinOp, Block, CompiledPath, Expr, MacroDef, MethodCall, Node, Pos, Pre, Reference, Seg, VarId,
};

/// How deep blocks and expressions may nest. Real templates stay under 10;
/// the cap keeps the parser's and the evaluator's stacks small.
pub(crate) const MAX_NESTING: usize = 64;

/// Regexes compiled from templates may not grow past this (the `regex`
/// crate's own guard against exponential compile sizes).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Names with a fixed [`VarId`], interned first in this order.
pub(crate) const BUILTINS: [&str; 7] = [
    "input",
    "util",
    "context",
    "stageVariables",
    "foreach",
    "velocityCount",
    "velocityHasNext",
];
pub(crate) const VAR_INPUT: VarId = 0;
pub(crate) const VAR_UTIL: VarId = 1;
pub(crate) const VAR_CONTEXT: VarId = 2;
pub(crate) const VAR_STAGE_VARIABLES: VarId = 3;
pub(crate) const VAR_FOREACH: VarId = 4;
pub(crate) const VAR_VELOCITY_COUNT: VarId = 5;
pub(crate) const VAR_VELOCITY_HAS_NEXT: VarId = 6;

const RESERVED_MACRO_NAMES: [&str; 14] = [
    "if", "else", "elseif", "end", "set", "foreach", "macro", "define", "stop", "break", "parse",
    "include", "evaluate", "return",
];

/// The output of [`parse`].
#[derive(Debug)]
pub(crate) struct Parsed {
    pub root: Block,
    /// By slot; `None` for names that are called but never defined (those
    /// calls print their own source text, as on AWS).
    pub macros: Vec<Option<MacroDef>>,
    pub defines: Vec<Block>,
    pub var_names: Vec<Arc<str>>,
    /// `$stageVariables` appears somewhere (its map is built per render
    /// only then).
    pub uses_stage_variables: bool,
}

/// A syntax error at a byte offset of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub message: String,
}

#[derive(Default)]
struct State {
    vars: HashMap<Arc<str>, VarId>,
    var_names: Vec<Arc<str>>,
    macro_slots: HashMap<Arc<str>, usize>,
    macros: Vec<Option<MacroDef>>,
    defines: Vec<Block>,
    uses_stage_variables: bool,
}

impl State {
    fn var(&mut self, name: &str) -> VarId {
        if let Some(id) = self.vars.get(name) {
            return *id;
        }
        let id = self.var_names.len() as VarId;
        let name: Arc<str> = Arc::from(name);
        self.vars.insert(name.clone(), id);
        self.var_names.push(name);
        id
    }

    fn macro_slot(&mut self, name: &str) -> usize {
        if let Some(id) = self.macro_slots.get(name) {
            return *id;
        }
        let id = self.macros.len();
        self.macro_slots.insert(Arc::from(name), id);
        self.macros.push(None);
        id
    }
}

/// Parses a whole template.
pub(crate) fn parse(src: &str) -> Result<Parsed, ParseError> {
    let mut st = State::default();
    for name in BUILTINS {
        st.var(name);
    }
    let root = {
        let mut p = Parser {
            src,
            b: src.as_bytes(),
            i: 0,
            fixed: None,
            st: &mut st,
            depth: 0,
            seg_from: 0,
        };
        p.template_body()?
    };
    Ok(Parsed {
        root,
        macros: st.macros,
        defines: st.defines,
        var_names: st.var_names,
        uses_stage_variables: st.uses_stage_variables,
    })
}

/// What ended a block.
enum Term {
    Eof,
    End,
    Else,
    ElseIf(Expr),
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    /// Inside an interpolated string literal the parser runs over the
    /// unescaped copy; every position is then reported as the literal's.
    fixed: Option<Pos>,
    st: &'a mut State,
    depth: usize,
    /// Where the current run of plain text began: after the last reference,
    /// directive or comment (or at the start of a block). Velocity 1.7's
    /// `#set` token takes the blanks in front of it when they begin such a
    /// run, so they print nothing.
    seg_from: usize,
}

type PResult<T> = Result<T, ParseError>;

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Velocity 1.7 identifiers also allow `-` after the first character
/// (`$context.requestOverride.header.X-Custom` relies on it).
fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl<'a> Parser<'a> {
    fn pos_at(&self, i: usize) -> Pos {
        self.fixed
            .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX))
    }

    fn err<T>(&self, i: usize, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos: self.pos_at(i) as usize,
            message: message.into(),
        })
    }

    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    fn peek_at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn starts_with(&self, s: &str) -> bool {
        self.b[self.i.min(self.b.len())..].starts_with(s.as_bytes())
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(self.i, format!("nesting deeper than {MAX_NESTING} levels"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Spaces, tabs and newlines (inside directive parentheses).
    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn blanks(&mut self) {
        while matches!(self.peek(), b' ' | b'\t') {
            self.i += 1;
        }
    }

    /// Velocity 1.7: after a directive, `[ \t]*` and one newline go.
    fn eat_newline(&mut self) {
        let mut j = self.i;
        while matches!(self.b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match self.b.get(j) {
            Some(b'\n') => self.i = j + 1,
            Some(b'\r') => {
                self.i = if self.b.get(j + 1) == Some(&b'\n') {
                    j + 2
                } else {
                    j + 1
                }
            }
            _ => {}
        }
    }

    fn ident_end(&self, from: usize) -> usize {
        let mut j = from;
        if j < self.b.len() && is_ident_start(self.b[j]) {
            j += 1;
            while j < self.b.len() && is_ident_char(self.b[j]) {
                j += 1;
            }
        }
        j
    }

    fn template_body(&mut self) -> PResult<Block> {
        let (block, term) = self.block()?;
        match term {
            Term::Eof => Ok(block),
            Term::End => self.err(
                self.i,
                "#end without a matching #if, #foreach, #macro or #define",
            ),
            Term::Else => self.err(self.i, "#else without a matching #if"),
            Term::ElseIf(_) => self.err(self.i, "#elseif without a matching #if"),
        }
    }

    /// Text, references and directives up to EOF or a block terminator.
    fn block(&mut self) -> PResult<(Block, Term)> {
        self.enter()?;
        let mut nodes = Vec::new();
        let mut text = String::new();
        self.seg_from = self.i;
        let term = loop {
            let start = self.i;
            while self.i < self.b.len() && !matches!(self.b[self.i], b'$' | b'#' | b'\\') {
                self.i += 1;
            }
            text.push_str(&self.src[start..self.i]);
            if self.i >= self.b.len() {
                break Term::Eof;
            }
            match self.b[self.i] {
                b'\\' => self.backslashes(&mut text, &mut nodes)?,
                b'$' => match self.reference()? {
                    Some(r) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(r));
                        self.seg_from = self.i;
                    }
                    None => {
                        text.push('$');
                        self.i += 1;
                    }
                },
                _ => {
                    let at = self.i;
                    if let Some(term) = self.hash(&mut text, &mut nodes)? {
                        break term;
                    }
                    // Anything but a literal `#` (a comment, a directive,
                    // a `#[[ ]]#` block) ends the run of text.
                    if self.i != at + 1 || !text.ends_with('#') {
                        self.seg_from = self.i;
                    }
                }
            }
        };
        flush(&mut text, &mut nodes);
        self.leave();
        Ok((nodes, term))
    }

    /// A run of backslashes: before a reference or a directive, pairs print
    /// one backslash and an odd one escapes what follows (AWS-recorded:
    /// `\$email` → `$email`, `\\$email` → `\foo`, `\#end` → `#end`);
    /// anywhere else they are plain text.
    fn backslashes(&mut self, text: &mut String, nodes: &mut Block) -> PResult<()> {
        let start = self.i;
        while self.peek() == b'\\' {
            self.i += 1;
        }
        let n = self.i - start;
        let after = self.i;
        match self.peek() {
            b'$' => match self.reference()? {
                Some(r) => {
                    push_backslashes(text, n / 2);
                    flush(text, nodes);
                    nodes.push(if n % 2 == 1 {
                        Node::EscapedRef(r)
                    } else {
                        Node::Ref(r)
                    });
                }
                None => {
                    push_backslashes(text, n);
                    self.i = after;
                }
            },
            b'#' => match self.directive_keyword_end() {
                Some(end) => {
                    push_backslashes(text, n / 2);
                    if n % 2 == 1 {
                        text.push_str(&self.src[after..end]);
                        self.i = end;
                    }
                }
                None => push_backslashes(text, n),
            },
            _ => push_backslashes(text, n),
        }
        Ok(())
    }

    /// At `#`: the end of a directive keyword (`#set`, `#{end}`, ...), if one
    /// is here.
    fn directive_keyword_end(&self) -> Option<usize> {
        let braced = self.peek_at(1) == b'{';
        let name_start = self.i + 1 + usize::from(braced);
        let name_end = self.ident_end(name_start);
        let name = &self.src[name_start..name_end];
        if !matches!(
            name,
            "set"
                | "if"
                | "elseif"
                | "else"
                | "end"
                | "foreach"
                | "macro"
                | "define"
                | "stop"
                | "break"
        ) {
            return None;
        }
        if braced {
            (self.b.get(name_end) == Some(&b'}')).then_some(name_end + 1)
        } else {
            Some(name_end)
        }
    }

    /// At `#`: a comment, a directive, a macro call, or a literal `#`.
    /// Returns the terminator when the directive ends the current block.
    fn hash(&mut self, text: &mut String, nodes: &mut Block) -> PResult<Option<Term>> {
        let start = self.i;
        match self.peek_at(1) {
            b'#' => {
                // `##` comments run to the end of the line and take the
                // newline with them (AWS-recorded: "## c\nStuff" → "Stuff").
                while self.i < self.b.len() && self.b[self.i] != b'\n' {
                    self.i += 1;
                }
                self.i = (self.i + 1).min(self.b.len());
                return Ok(None);
            }
            b'*' => {
                // `#* *#` keeps the newline after it (AWS-recorded).
                match find(self.b, self.i + 2, b"*#") {
                    Some(end) => self.i = end + 2,
                    None => return self.err(start, "unterminated #* comment"),
                }
                return Ok(None);
            }
            b'[' if self.peek_at(2) == b'[' => {
                match find(self.b, self.i + 3, b"]]#") {
                    Some(end) => {
                        text.push_str(&self.src[self.i + 3..end]);
                        self.i = end + 3;
                    }
                    None => return self.err(start, "unterminated #[[ literal block"),
                }
                return Ok(None);
            }
            _ => {}
        }
        let braced = self.peek_at(1) == b'{';
        let name_start = self.i + 1 + usize::from(braced);
        // Directive and macro names: a letter, then letters, digits, `_`.
        let mut name_end = name_start;
        if name_end < self.b.len() && self.b[name_end].is_ascii_alphabetic() {
            while name_end < self.b.len()
                && (self.b[name_end].is_ascii_alphanumeric() || self.b[name_end] == b'_')
            {
                name_end += 1;
            }
        }
        if name_end == name_start || (braced && self.b.get(name_end) != Some(&b'}')) {
            text.push('#');
            self.i += 1;
            return Ok(None);
        }
        let name = &self.src[name_start..name_end];
        let after = name_end + usize::from(braced);
        match name {
            "end" | "else" => {
                self.i = after;
                self.eat_newline();
                Ok(Some(if name == "end" { Term::End } else { Term::Else }))
            }
            "elseif" => {
                self.i = after;
                let cond = self.paren_expr("#elseif")?;
                self.eat_newline();
                Ok(Some(Term::ElseIf(cond)))
            }
            "set" | "if" | "foreach" | "macro" | "define" | "break" | "stop" => {
                if name == "set" {
                    // Velocity 1.7's token is `[ \t]*#set(`: blanks that
                    // begin a run of text belong to it and print nothing
                    // (AWS-recorded: `#set(..) #set(..)⏎` before ` $x `
                    // prints two spaces, not three).
                    let blanks = &self.b[self.seg_from.min(start)..start];
                    if !blanks.is_empty()
                        && blanks.iter().all(|&b| b == b' ' || b == b'\t')
                        && text.len() >= blanks.len()
                        && text.as_bytes()[text.len() - blanks.len()..] == *blanks
                    {
                        text.truncate(text.len() - blanks.len());
                    }
                }
                self.i = after;
                let node = match name {
                    "set" => self.set_directive(start)?,
                    "if" => self.if_directive(start)?,
                    "foreach" => self.foreach_directive(start)?,
                    "macro" => {
                        self.macro_directive(start)?;
                        None
                    }
                    "define" => self.define_directive(start)?,
                    "break" => {
                        self.eat_newline();
                        Some(Node::Break)
                    }
                    _ => {
                        self.eat_newline();
                        Some(Node::Stop)
                    }
                };
                // A #macro definition leaves no node: its neighbouring text
                // then stays in one buffer instead of being re-joined.
                if let Some(node) = node {
                    flush(text, nodes);
                    nodes.push(node);
                }
                Ok(None)
            }
            _ => {
                // `#name(args)`: a macro call. Anything that does not parse
                // as one is plain text (an HTML colour, a `#` in prose).
                self.i = after;
                self.blanks();
                if self.peek() == b'(' {
                    let save_depth = self.depth;
                    if let Ok(args) = self.macro_args() {
                        let name = name.to_owned();
                        let id = self.st.macro_slot(&name);
                        let literal: Arc<str> = Arc::from(&self.src[start..self.i]);
                        self.eat_newline();
                        flush(text, nodes);
                        nodes.push(Node::MacroCall {
                            pos: self.pos_at(start),
                            id,
                            args,
                            literal,
                        });
                        return Ok(None);
                    }
                    self.depth = save_depth;
                }
                text.push('#');
                self.i = start + 1;
                Ok(None)
            }
        }
    }

    /// `( args )` of a macro call: values separated by blanks or commas.
    fn macro_args(&mut self) -> PResult<Vec<Expr>> {
        self.i += 1;
        let mut args = Vec::new();
        loop {
            self.ws();
            if self.peek() == b',' {
                self.i += 1;
                continue;
            }
            if self.peek() == b')' {
                self.i += 1;
                return Ok(args);
            }
            if self.i >= self.b.len() {
                return self.err(self.i, "unterminated macro call");
            }
            args.push(self.unary()?);
        }
    }

    /// `(` expression `)` after a directive name.
    fn paren_expr(&mut self, what: &str) -> PResult<Expr> {
        self.blanks();
        if self.peek() != b'(' {
            return self.err(self.i, format!("expected '(' after {what}"));
        }
        self.i += 1;
        self.ws();
        let e = self.expr()?;
        self.ws();
        if self.peek() != b')' {
            return self.err(self.i, format!("expected ')' to close {what}"));
        }
        self.i += 1;
        Ok(e)
    }

    fn set_directive(&mut self, start: usize) -> PResult<Option<Node>> {
        self.blanks();
        if self.peek() != b'(' {
            return self.err(self.i, "expected '(' after #set");
        }
        self.i += 1;
        self.ws();
        let target_at = self.i;
        let target = match self.reference()? {
            Some(r) => r,
            None => return self.err(self.i, "#set needs a $reference on the left of '='"),
        };
        if matches!(target.segs.last(), Some(Seg::Method(_))) {
            return self.err(target_at, "cannot assign to a method call");
        }
        self.ws();
        if self.peek() != b'=' {
            return self.err(self.i, "expected '=' in #set");
        }
        self.i += 1;
        self.ws();
        let value = self.expr()?;
        self.ws();
        if self.peek() != b')' {
            return self.err(self.i, "expected ')' to close #set");
        }
        self.i += 1;
        self.eat_newline();
        Ok(Some(Node::Set {
            pos: self.pos_at(start),
            target,
            value,
        }))
    }

    fn if_directive(&mut self, start: usize) -> PResult<Option<Node>> {
        let cond = self.paren_expr("#if")?;
        self.eat_newline();
        let mut branches = Vec::new();
        let mut cond = cond;
        loop {
            let (block, term) = self.block()?;
            branches.push((cond, block));
            match term {
                Term::End => {
                    return Ok(Some(Node::If {
                        branches,
                        otherwise: None,
                    }))
                }
                Term::ElseIf(next) => cond = next,
                Term::Else => {
                    let (otherwise, term) = self.block()?;
                    return match term {
                        Term::End => Ok(Some(Node::If {
                            branches,
                            otherwise: Some(otherwise),
                        })),
                        Term::Eof => self.err(start, "#if without #end"),
                        _ => self.err(self.i, "#else or #elseif after #else"),
                    };
                }
                Term::Eof => return self.err(start, "#if without #end"),
            }
        }
    }

    /// The body of `#foreach`, `#macro`, `#define`: must end with `#end`.
    fn body_until_end(&mut self, start: usize, what: &str) -> PResult<Block> {
        let (block, term) = self.block()?;
        match term {
            Term::End => Ok(block),
            Term::Eof => self.err(start, format!("{what} without #end")),
            Term::Else | Term::ElseIf(_) => self.err(self.i, format!("#else inside {what}")),
        }
    }

    /// `$name` or `${name}` (loop variables, macro parameters, #define).
    fn var_name(&mut self, what: &str) -> PResult<VarId> {
        if self.peek() != b'$' {
            return self.err(self.i, format!("expected a $variable in {what}"));
        }
        self.i += 1;
        let braced = self.peek() == b'{';
        if braced {
            self.i += 1;
        }
        let end = self.ident_end(self.i);
        if end == self.i {
            return self.err(self.i, format!("expected a variable name in {what}"));
        }
        let id = self.st.var(&self.src[self.i..end]);
        self.i = end;
        if braced {
            if self.peek() != b'}' {
                return self.err(self.i, "expected '}'");
            }
            self.i += 1;
        }
        Ok(id)
    }

    fn foreach_directive(&mut self, start: usize) -> PResult<Option<Node>> {
        self.blanks();
        if self.peek() != b'(' {
            return self.err(self.i, "expected '(' after #foreach");
        }
        self.i += 1;
        self.ws();
        let var = self.var_name("#foreach")?;
        self.ws();
        if !self.starts_with("in") || is_ident_char(self.peek_at(2)) {
            return self.err(self.i, "expected 'in' in #foreach");
        }
        self.i += 2;
        self.ws();
        let iterable = self.expr()?;
        self.ws();
        if self.peek() != b')' {
            return self.err(self.i, "expected ')' to close #foreach");
        }
        self.i += 1;
        self.eat_newline();
        let body = self.body_until_end(start, "#foreach")?;
        Ok(Some(Node::Foreach {
            pos: self.pos_at(start),
            var,
            iterable,
            body,
        }))
    }

    /// `#macro(name $a $b) body #end`. Definitions are hoisted: a macro can
    /// be called anywhere in the template (see docs/templates.md).
    fn macro_directive(&mut self, start: usize) -> PResult<()> {
        self.blanks();
        if self.peek() != b'(' {
            return self.err(self.i, "expected '(' after #macro");
        }
        self.i += 1;
        self.ws();
        let end = self.ident_end(self.i);
        if end == self.i {
            return self.err(self.i, "expected a macro name");
        }
        let name = self.src[self.i..end].to_owned();
        if RESERVED_MACRO_NAMES.contains(&name.as_str()) {
            return self.err(self.i, format!("'{name}' is a directive, not a macro name"));
        }
        self.i = end;
        let mut params = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                b',' => self.i += 1,
                b')' => {
                    self.i += 1;
                    break;
                }
                b'$' => params.push(self.var_name("#macro")?),
                _ => return self.err(self.i, "expected a $parameter or ')' in #macro"),
            }
        }
        self.eat_newline();
        let body = self.body_until_end(start, "#macro")?;
        let id = self.st.macro_slot(&name);
        self.st.macros[id] = Some(MacroDef { params, body });
        Ok(())
    }

    /// `#define($name) block #end` (AWS-recorded to work).
    fn define_directive(&mut self, start: usize) -> PResult<Option<Node>> {
        self.blanks();
        if self.peek() != b'(' {
            return self.err(self.i, "expected '(' after #define");
        }
        self.i += 1;
        self.ws();
        let var = self.var_name("#define")?;
        self.ws();
        if self.peek() != b')' {
            return self.err(self.i, "expected ')' to close #define");
        }
        self.i += 1;
        self.eat_newline();
        let body = self.body_until_end(start, "#define")?;
        let block = self.st.defines.len() as u32;
        self.st.defines.push(body);
        Ok(Some(Node::Define { var, block }))
    }

    /// At `$`: a reference, `None` when the text here is not one (`$ `,
    /// `$1`), or an error for a reference that starts well and breaks
    /// (`${a`, `$a.b(`).
    fn reference(&mut self) -> PResult<Option<Box<Reference>>> {
        let start = self.i;
        let mut j = self.i + 1;
        let quiet = self.b.get(j) == Some(&b'!');
        if quiet {
            j += 1;
        }
        let braced = self.b.get(j) == Some(&b'{');
        if braced {
            j += 1;
        }
        let end = self.ident_end(j);
        if end == j {
            return Ok(None);
        }
        let root = self.st.var(&self.src[j..end]);
        if root == VAR_STAGE_VARIABLES {
            self.st.uses_stage_variables = true;
        }
        self.i = end;
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                b'.' if is_ident_start(self.peek_at(1)) => {
                    let name_at = self.i + 1;
                    let name_end = self.ident_end(name_at);
                    let name: Arc<str> = Arc::from(&self.src[name_at..name_end]);
                    self.i = name_end;
                    if self.peek() == b'(' {
                        let call = self.method_call(name_at, name, root, segs.is_empty())?;
                        segs.push(Seg::Method(Box::new(call)));
                    } else {
                        segs.push(Seg::Prop {
                            pos: self.pos_at(name_at),
                            name,
                        });
                    }
                }
                b'[' => {
                    let save = self.i;
                    let save_depth = self.depth;
                    self.i += 1;
                    self.ws();
                    let index = self.expr();
                    self.ws();
                    match index {
                        Ok(index) if self.peek() == b']' => {
                            self.i += 1;
                            segs.push(Seg::Index {
                                pos: self.pos_at(save),
                                index,
                            });
                        }
                        // `$a[` followed by something else: the bracket is text.
                        _ => {
                            self.i = save;
                            self.depth = save_depth;
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        if braced {
            if self.peek() != b'}' {
                return self.err(self.i, "expected '}' to close ${...}");
            }
            self.i += 1;
        }
        Ok(Some(Box::new(Reference {
            pos: self.pos_at(start),
            text: Arc::from(&self.src[start..self.i]),
            quiet,
            root,
            segs,
        })))
    }

    fn method_call(
        &mut self,
        name_at: usize,
        name: Arc<str>,
        root: VarId,
        first: bool,
    ) -> PResult<MethodCall> {
        let open = self.i;
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == b')' {
            self.i += 1;
        } else {
            loop {
                args.push(self.expr()?);
                self.ws();
                match self.peek() {
                    b',' => {
                        self.i += 1;
                        self.ws();
                    }
                    b')' => {
                        self.i += 1;
                        break;
                    }
                    _ => return self.err(open, format!("unclosed argument list of .{name}(")),
                }
            }
        }
        let pre = self.precompile(name_at, &name, &args, root == VAR_INPUT && first)?;
        Ok(MethodCall {
            pos: self.pos_at(name_at),
            name,
            args,
            pre,
        })
    }

    /// Parses literal JSONPath and regex arguments once, here.
    fn precompile(&self, at: usize, name: &str, args: &[Expr], on_input: bool) -> PResult<Pre> {
        let Some(Expr::Str(lit)) = args.first() else {
            return Ok(Pre::None);
        };
        match name {
            "path" | "json" if on_input && args.len() == 1 => match compile_path(lit) {
                Ok(p) => Ok(Pre::Path(Arc::new(p))),
                Err(e) => self.err(at, format!("invalid JSONPath {lit:?}: {e}")),
            },
            "replaceAll" | "replaceFirst" | "split" | "matches" => {
                Ok(match compile_regex(lit, name == "matches") {
                    Ok(re) => Pre::Regex(Arc::new(re)),
                    Err(e) => Pre::BadRegex(Arc::from(e)),
                })
            }
            _ => Ok(Pre::None),
        }
    }

    // ---- expressions -------------------------------------------------

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let e = self.or_expr();
        self.leave();
        e
    }

    /// Matches an operator word (`and`, `eq`, ...) on a word boundary.
    fn word(&mut self, w: &str) -> bool {
        if self.starts_with(w) && !is_ident_char(self.peek_at(w.len())) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    fn bin(&self, at: usize, op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
        Expr::Bin {
            pos: self.pos_at(at),
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        }
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.and_expr()?;
        loop {
            self.ws();
            let at = self.i;
            if self.sym("||") || self.word("or") {
                self.ws();
                let rhs = self.and_expr()?;
                lhs = self.bin(at, BinOp::Or, lhs, rhs);
            } else {
                return Ok(lhs);
            }
        }
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.eq_expr()?;
        loop {
            self.ws();
            let at = self.i;
            if self.sym("&&") || self.word("and") {
                self.ws();
                let rhs = self.eq_expr()?;
                lhs = self.bin(at, BinOp::And, lhs, rhs);
            } else {
                return Ok(lhs);
            }
        }
    }

    fn eq_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.rel_expr()?;
        loop {
            self.ws();
            let at = self.i;
            let op = if self.sym("==") || self.word("eq") {
                BinOp::Eq
            } else if self.sym("!=") || self.word("ne") {
                BinOp::Ne
            } else {
                return Ok(lhs);
            };
            self.ws();
            let rhs = self.rel_expr()?;
            lhs = self.bin(at, op, lhs, rhs);
        }
    }

    fn rel_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.add_expr()?;
        loop {
            self.ws();
            let at = self.i;
            let op = if self.sym("<=") || self.word("le") {
                BinOp::Le
            } else if self.sym(">=") || self.word("ge") {
                BinOp::Ge
            } else if self.sym("<") || self.word("lt") {
                BinOp::Lt
            } else if self.sym(">") || self.word("gt") {
                BinOp::Gt
            } else {
                return Ok(lhs);
            };
            self.ws();
            let rhs = self.add_expr()?;
            lhs = self.bin(at, op, lhs, rhs);
        }
    }

    fn add_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.mul_expr()?;
        loop {
            self.ws();
            let at = self.i;
            let op = match self.peek() {
                b'+' => BinOp::Add,
                b'-' => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.i += 1;
            self.ws();
            let rhs = self.mul_expr()?;
            lhs = self.bin(at, op, lhs, rhs);
        }
    }

    fn mul_expr(&mut self) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        loop {
            self.ws();
            let at = self.i;
            let op = match self.peek() {
                b'*' => BinOp::Mul,
                b'/' => BinOp::Div,
                b'%' => BinOp::Mod,
                _ => return Ok(lhs),
            };
            self.i += 1;
            self.ws();
            let rhs = self.unary()?;
            lhs = self.bin(at, op, lhs, rhs);
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        self.ws();
        let at = self.i;
        if (self.peek() == b'!' && self.peek_at(1) != b'=') || self.word("not") {
            if self.peek() == b'!' {
                self.i += 1;
            }
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(Expr::Not(Box::new(e?)));
        }
        if self.peek() == b'-' {
            self.i += 1;
            if self.peek().is_ascii_digit()
                || (self.peek() == b'.' && self.peek_at(1).is_ascii_digit())
            {
                return self.number(at);
            }
            self.enter()?;
            let e = self.unary();
            self.leave();
            return Ok(Expr::Neg {
                pos: self.pos_at(at),
                expr: Box::new(e?),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        self.ws();
        let at = self.i;
        match self.peek() {
            b'$' => match self.reference()? {
                Some(r) => Ok(Expr::Ref(r)),
                None => self.err(at, "expected a reference after '$'"),
            },
            b'0'..=b'9' => self.number(at),
            b'.' if self.peek_at(1).is_ascii_digit() => self.number(at),
            b'\'' => self.single_quoted(),
            b'"' => self.double_quoted(),
            b'[' => self.list_literal(),
            b'{' => self.map_literal(),
            b'(' => {
                self.i += 1;
                let e = self.expr()?;
                self.ws();
                if self.peek() != b')' {
                    return self.err(self.i, "expected ')'");
                }
                self.i += 1;
                Ok(e)
            }
            _ => {
                if self.word("true") {
                    Ok(Expr::Bool(true))
                } else if self.word("false") {
                    Ok(Expr::Bool(false))
                } else if self.word("null") {
                    Ok(Expr::Null)
                } else if self.i >= self.b.len() {
                    self.err(at, "unexpected end of template in an expression")
                } else {
                    self.err(at, "expected an expression")
                }
            }
        }
    }

    /// Integer or decimal literal starting at `at` (which may be a `-`).
    /// `1..3` is a range, so `1.` only starts a fraction when a digit follows.
    fn number(&mut self, at: usize) -> PResult<Expr> {
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        let mut float = false;
        // Velocity 1.7's FLOATING_POINT_LITERAL: `1.5`, `2.` (not the
        // start of a range `2..5`), and an exponent (`1e3`, `1.5E-3`).
        if self.peek() == b'.' && self.peek_at(1) != b'.' && !is_ident_start(self.peek_at(1)) {
            float = true;
            self.i += 1;
            while self.peek().is_ascii_digit() {
                self.i += 1;
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            let sign = usize::from(matches!(self.peek_at(1), b'+' | b'-'));
            if self.peek_at(1 + sign).is_ascii_digit() {
                float = true;
                self.i += 1 + sign;
                while self.peek().is_ascii_digit() {
                    self.i += 1;
                }
            }
        }
        let text = &self.src[at..self.i];
        if !float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Expr::Int(i));
            }
        }
        match text.parse::<f64>() {
            Ok(f) => Ok(Expr::Float(f)),
            Err(_) => self.err(at, format!("bad number {text:?}")),
        }
    }

    /// `'...'`: no interpolation and no escapes except a doubled quote
    /// (AWS-recorded: backslashes stay as they are).
    fn single_quoted(&mut self) -> PResult<Expr> {
        let (content, _) = self.quoted(b'\'')?;
        Ok(Expr::Str(Arc::from(content)))
    }

    /// `"..."`: `""` is a quote; with `$` or `#` inside, the content is a
    /// template of its own, parsed now.
    fn double_quoted(&mut self) -> PResult<Expr> {
        let start = self.i;
        let (content, _) = self.quoted(b'"')?;
        if !content.contains(['$', '#']) {
            return Ok(Expr::Str(Arc::from(content)));
        }
        let pos = self.pos_at(start);
        self.enter()?;
        let body = {
            let mut sub = Parser {
                src: &content,
                b: content.as_bytes(),
                i: 0,
                fixed: Some(pos),
                st: &mut *self.st,
                depth: self.depth,
                seg_from: 0,
            };
            sub.template_body()
        };
        self.leave();
        Ok(Expr::Interp { pos, body: body? })
    }

    fn quoted(&mut self, q: u8) -> PResult<(String, usize)> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        let mut seg = self.i;
        loop {
            match self.b.get(self.i) {
                None => return self.err(start, "unterminated string literal"),
                Some(&c) if c == q => {
                    out.push_str(&self.src[seg..self.i]);
                    if self.b.get(self.i + 1) == Some(&q) {
                        out.push(q as char);
                        self.i += 2;
                        seg = self.i;
                    } else {
                        self.i += 1;
                        return Ok((out, start));
                    }
                }
                Some(_) => self.i += 1,
            }
        }
    }

    fn list_literal(&mut self) -> PResult<Expr> {
        let at = self.i;
        self.i += 1;
        self.enter()?;
        let r = self.list_items(at);
        self.leave();
        r
    }

    fn list_items(&mut self, at: usize) -> PResult<Expr> {
        self.ws();
        if self.peek() == b']' {
            self.i += 1;
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expr()?;
        self.ws();
        if self.sym("..") {
            self.ws();
            let to = self.expr()?;
            self.ws();
            if self.peek() != b']' {
                return self.err(self.i, "expected ']' to close the range");
            }
            self.i += 1;
            return Ok(Expr::Range {
                pos: self.pos_at(at),
                from: Box::new(first),
                to: Box::new(to),
            });
        }
        let mut items = vec![first];
        loop {
            self.ws();
            match self.peek() {
                b',' => {
                    self.i += 1;
                    items.push(self.expr()?);
                }
                b']' => {
                    self.i += 1;
                    return Ok(Expr::List(items));
                }
                _ => return self.err(self.i, "expected ',' or ']' in a list"),
            }
        }
    }

    fn map_literal(&mut self) -> PResult<Expr> {
        self.i += 1;
        self.enter()?;
        let r = self.map_items();
        self.leave();
        r
    }

    fn map_items(&mut self) -> PResult<Expr> {
        let mut entries = Vec::new();
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Ok(Expr::Map(entries));
        }
        loop {
            let k = self.expr()?;
            self.ws();
            if self.peek() != b':' {
                return self.err(self.i, "expected ':' in a map");
            }
            self.i += 1;
            let v = self.expr()?;
            entries.push((k, v));
            self.ws();
            match self.peek() {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(Expr::Map(entries));
                }
                _ => return self.err(self.i, "expected ',' or '}' in a map"),
            }
        }
    }
}

fn flush(text: &mut String, nodes: &mut Block) {
    if text.is_empty() {
        return;
    }
    if let Some(Node::Text(prev)) = nodes.last_mut() {
        let mut joined = String::with_capacity(prev.len() + text.len());
        joined.push_str(prev);
        joined.push_str(text);
        *prev = Arc::from(joined);
    } else {
        nodes.push(Node::Text(Arc::from(text.as_str())));
    }
    text.clear();
}

fn push_backslashes(text: &mut String, n: usize) {
    for _ in 0..n {
        text.push('\\');
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Compiles a Java regex with the `regex` crate. `\Q...\E` quoting is
/// rewritten, and `\d \D \w \W \s \S` become the ASCII classes they are in
/// `java.util.regex` (the crate's are Unicode: `\w` would match `é`, so an
/// e-mail check that AWS refuses would pass); everything else is passed
/// through (lookaround and backreferences do not compile; see
/// docs/templates.md).
pub(crate) fn compile_regex(pattern: &str, whole: bool) -> Result<Regex, String> {
    let translated = translate_quotes(pattern);
    let source = if whole {
        format!("\\A(?:{translated})\\z")
    } else {
        translated
    };
    RegexBuilder::new(&source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(MAX_NESTING as u32)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            format!(
                "invalid regex {pattern:?}: {}",
                last.trim_start_matches("error: ")
            )
        })
}

fn translate_quotes(p: &str) -> String {
    let mut in_class = 0usize;
    if !p.contains("\\Q") {
        let mut out = String::with_capacity(p.len() + 8);
        ascii_classes(p, &mut in_class, &mut out);
        return out;
    }
    let mut out = String::with_capacity(p.len() + 8);
    let mut rest = p;
    while let Some(q) = rest.find("\\Q") {
        ascii_classes(&rest[..q], &mut in_class, &mut out);
        let quoted_start = q + 2;
        let (quoted, next) = match rest[quoted_start..].find("\\E") {
            Some(e) => (&rest[quoted_start..quoted_start + e], quoted_start + e + 2),
            None => (&rest[quoted_start..], rest.len()),
        };
        out.push_str(&regex::escape(quoted));
        rest = &rest[next..];
    }
    ascii_classes(rest, &mut in_class, &mut out);
    out
}

/// Java's predefined classes are ASCII (without `UNICODE_CHARACTER_CLASS`):
/// `\d` `[0-9]`, `\w` `[a-zA-Z_0-9]`, `\s` `[ \t\n\x0B\f\r]`, and their
/// negations. Inside a bracket class a positive one is spliced in and a
/// negation nested (`[\W.]` → `[[^0-9A-Za-z_].]`). `in_class` is the bracket
/// depth, carried across `\Q...\E` sections.
fn ascii_classes(p: &str, in_class: &mut usize, out: &mut String) {
    const DIGIT: &str = "0-9";
    const WORD: &str = "0-9A-Za-z_";
    const SPACE: &str = "\\t\\n\\x0B\\x0C\\r\\x20";
    let mut chars = p.chars().peekable();
    // Just after `[` or `[^`: a `]` there is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(&n) = chars.peek() else {
                    out.push(c);
                    break;
                };
                chars.next();
                let (set, negated) = match n {
                    'd' => (DIGIT, false),
                    'D' => (DIGIT, true),
                    'w' => (WORD, false),
                    'W' => (WORD, true),
                    's' => (SPACE, false),
                    'S' => (SPACE, true),
                    _ => {
                        out.push(c);
                        out.push(n);
                        continue;
                    }
                };
                match (negated, *in_class > 0) {
                    (false, true) => out.push_str(set),
                    (false, false) => {
                        out.push('[');
                        out.push_str(set);
                        out.push(']');
                    }
                    (true, _) => {
                        out.push_str("[^");
                        out.push_str(set);
                        out.push(']');
                    }
                }
            }
            '[' => {
                out.push(c);
                *in_class += 1;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            ']' if *in_class > 0 && !at_start => {
                out.push(c);
                *in_class -= 1;
            }
            _ => out.push(c),
        }
    }
}

/// Turns a Jayway-style path into RFC 9535 and parses it. Jayway accepts
/// paths without `$` and dotted names RFC 9535 does not (`$.a-b`); those
/// become `$.a` / `$['a-b']`.
pub(crate) fn compile_path(path: &str) -> Result<CompiledPath, String> {
    let normalized = normalize_path(path);
    check_escapes(&normalized)?;
    // serde_json_path 0.7 can panic on malformed input that reaches it
    // (a path often comes from request data at run time): a panic here
    // is an invalid path, never a dead shard.
    let parsed = std::panic::catch_unwind(|| JsonPath::parse(&normalized))
        .map_err(|_| format!("invalid JSONPath `{path}`"))?
        .map_err(|e| e.to_string())?;
    Ok(CompiledPath {
        path: parsed,
        definite: is_definite(&normalized),
    })
}

/// A `\u` escape in a quoted name must have its four hex digits (a
/// truncated one panics inside serde_json_path 0.7.2).
fn check_escapes(path: &str) -> Result<(), String> {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u') {
                let hex = b.get(i + 2..i + 6);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(format!("invalid JSONPath `{path}`: incomplete \\u escape"));
                }
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    Ok(())
}

fn normalize_path(path: &str) -> String {
    let path = path.trim();
    let mut src = String::with_capacity(path.len() + 8);
    if path.is_empty() {
        return "$".to_owned();
    }
    if !path.starts_with('$') {
        src.push_str("$.");
    }
    src.push_str(path);
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            // Whole characters: a quoted name may hold any Unicode.
            let len_at = |at: usize| src[at..].chars().next().map_or(1, char::len_utf8);
            if c == b'\\' && i + 1 < b.len() {
                let end = i + 1 + len_at(i + 1);
                out.push_str(&src[i..end]);
                i = end;
                continue;
            }
            if c == q {
                quote = None;
            }
            let end = i + len_at(i);
            out.push_str(&src[i..end]);
            i = end;
            continue;
        }
        match c {
            b'\'' | b'"' if depth > 0 => {
                quote = Some(c);
                out.push(c as char);
                i += 1;
            }
            b'[' => {
                depth += 1;
                out.push('[');
                i += 1;
            }
            b']' => {
                depth = depth.saturating_sub(1);
                out.push(']');
                i += 1;
            }
            b'.' if depth == 0 => {
                let dots = if b.get(i + 1) == Some(&b'.') { 2 } else { 1 };
                i += dots;
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                let name = &src[start..i];
                let shorthand = name == "*"
                    || name.is_empty()
                    || (name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_' || !c.is_ascii())
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || !c.is_ascii()));
                if shorthand {
                    out.push_str(&src[start - dots..i]);
                } else {
                    out.push_str(if dots == 2 { ".." } else { "" });
                    out.push_str("['");
                    for ch in name.chars() {
                        if ch == '\'' || ch == '\\' {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    out.push_str("']");
                }
            }
            _ => {
                // Multi-byte characters are copied whole.
                let len = src[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&src[i..i + len]);
                i += len;
            }
        }
    }
    out
}

/// Jayway returns a list for paths with wildcards, deep scans, filters,
/// slices or unions, and a single value otherwise.
fn is_definite(path: &str) -> bool {
    let b = path.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' if depth > 0 => quote = Some(c),
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'*' | b'?' => return false,
            b'.' if b.get(i + 1) == Some(&b'.') => return false,
            b':' | b',' if depth > 0 => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(template, Ok(()) | Err((line-insensitive byte offset, message part)))`.
    #[test]
    fn syntax_errors_are_located() {
        let cases: [(&str, usize, &str); 12] = [
            ("#if($a)x", 0, "#if without #end"),
            ("ab#end", 6, "#end without"),
            ("#set($a 1)", 8, "expected '='"),
            ("#set(1 = 2)", 5, "$reference"),
            ("x ${a", 5, "expected '}'"),
            ("$a.b(1", 4, "unclosed argument list"),
            ("#foreach($x on $y)#end", 12, "'in'"),
            ("#* open", 0, "unterminated #*"),
            ("#set($a = 'x)", 10, "unterminated string"),
            ("#if($a)#else#else#end", 17, "after #else"),
            ("#macro(if)#end", 7, "directive"),
            ("$input.path('$[')", 7, "invalid JSONPath"),
        ];
        for (src, pos, message) in cases {
            let err = parse(src).err().unwrap_or_else(|| panic!("{src:?} parsed"));
            assert_eq!(err.pos, pos, "{src:?}: {err:?}");
            assert!(err.message.contains(message), "{src:?}: {err:?}");
        }
    }

    #[test]
    fn not_references_stay_text() {
        for src in [
            "$",
            "$ ",
            "$1",
            "a$",
            "#",
            "# x",
            "#1",
            "#{",
            "color: #13ff93",
            "\\",
            "$!",
            "${",
        ] {
            let parsed = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e:?}"));
            match parsed.root.as_slice() {
                [Node::Text(t)] => assert_eq!(&**t, src),
                other => panic!("{src:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "(".repeat(5000);
        assert!(parse(&format!("#set($a = {deep}1)")).is_err());
        let deep_if = "#if(true)".repeat(5000);
        assert!(parse(&deep_if).is_err());
        let deep_str = "\"$a".repeat(3000);
        assert!(parse(&format!("#set($x = {deep_str})")).is_err());
    }

    #[test]
    fn paths_normalize_and_classify() {
        let cases = [
            ("$", "$", true),
            ("$.a.b", "$.a.b", true),
            ("a.b", "$.a.b", true),
            ("$.a-b.c", "$['a-b'].c", true),
            ("$['x y'][0]", "$['x y'][0]", true),
            ("$.items[*].id", "$.items[*].id", false),
            ("$..id", "$..id", false),
            ("$.a[?(@.p < 10)]", "$.a[?(@.p < 10)]", false),
            ("$.a[0:2]", "$.a[0:2]", false),
            ("$['a,b']", "$['a,b']", true),
        ];
        for (input, normalized, definite) in cases {
            assert_eq!(normalize_path(input), normalized, "{input}");
            assert_eq!(is_definite(&normalize_path(input)), definite, "{input}");
            assert!(compile_path(input).is_ok(), "{input}");
        }
    }

    #[test]
    fn java_regex_quoting() {
        let re = compile_regex("\\Qa.b\\E+", false).unwrap();
        assert!(re.is_match("a.bbb"));
        assert!(!re.is_match("axb"));
        assert!(compile_regex("(a)\\1", false).is_err());
        assert!(compile_regex("[0-9]*", true).unwrap().is_match("123"));
        assert!(!compile_regex("[0-9]*", true).unwrap().is_match("d123"));
    }

    /// Java's `\d \w \s` and negations are ASCII (checked against
    /// `java.util.regex`): `é`, Arabic digits and no-break spaces are not in
    /// them.
    #[test]
    fn java_regex_classes_are_ascii() {
        let m = |p: &str, t: &str| compile_regex(p, true).unwrap().is_match(t);
        assert!(m("\\w+", "abc_09"));
        assert!(!m("\\w+", "hélène"));
        assert!(!m("^[\\w.+-]+@[\\w-]+\\.[\\w.]+$", "josé@example.com"));
        assert!(m("^[\\w.+-]+@[\\w-]+\\.[\\w.]+$", "jose.b+x@example.com"));
        assert!(!m("\\d+", "١٢٣"));
        assert!(m("\\d+", "123"));
        assert!(m("\\W", "é"));
        assert!(m("[\\W]", "é"));
        assert!(m("[^\\w]", "é"));
        assert!(!m("\\s", "\u{a0}"));
        assert!(m("\\S", "\u{a0}"));
        assert!(m("\\s", "\u{b}"));
        assert!(m("[\\D&&[^x]]+", "ab"));
        assert!(m("[]\\d]+", "]1"));
        assert!(m("\\\\d", "\\d"), "an escaped backslash is not a class");
        assert!(m("\\Q\\d\\E\\d", "\\d7"), "quoted text is literal");
        let r = compile_regex("\\W", false).unwrap();
        assert_eq!(r.replace_all("Café Nº1", ""), "CafN1");
    }
}
