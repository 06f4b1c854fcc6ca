//! Velocity (VTL) mapping templates, AWS API Gateway flavour: compile once,
//! render per request.
//!
//! Owns: the template language of integration request/response mapping
//! templates — references, `#set`/`#if`/`#foreach`/`#macro`/`#define`,
//! Java-flavoured values and methods, `$input`, `$util`, `$context` (with
//! `requestOverride`/`responseOverride`) and `$stageVariables` — and the
//! budgets that keep a hostile template bounded in time and memory.
//! Sans-IO: [`Template::render`] is a pure function of the compiled
//! template, the request data in [`Input`] and the [`Limits`].
//! Must not: touch sockets, clocks or the snapshot; parse anything at
//! render time that could have been parsed by [`compile`].
//!
//! Read first: [`compile`] and [`Template::render`]; then `parse.rs` (the
//! syntax), `eval.rs` (semantics and budgets), `aws.rs` (`$input`,
//! `$util`, `$context`). User documentation, including every known
//! difference from AWS: `docs/templates.md`.
//!
//! Behaviour follows what AWS was recorded doing (LocalStack's and
//! localstack/airspeed's AWS-validated snapshots, reference §2.3) where that
//! differs from stock Velocity 1.7; the module docs of `eval.rs` and
//! `parse.rs` name the recordings.

mod ast;
mod aws;
mod eval;
mod java;
mod methods;
mod parse;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parse::Parsed;

/// A compiled template. Immutable, `Send + Sync`: compile once when the
/// snapshot is built, render from any shard.
#[derive(Debug)]
pub struct Template {
    source: Box<str>,
    parsed: Parsed,
    options: CompileOptions,
    uses_stage_variables: bool,
    /// Initial capacity for the output: the literal text's length.
    output_hint: usize,
    /// The one empty string null references evaluate to.
    empty: Arc<str>,
    /// The output, when the template is plain text (no references or
    /// directives): rendering it needs no request data at all.
    static_output: Option<bytes::Bytes>,
    /// The source is empty or whitespace only (checked once: it is asked
    /// for every MOCK request).
    empty_source: bool,
}

/// A syntax error, with the 1-based line and column (in characters) where
/// the problem is.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for TemplateError {}

/// What a reference that resolves to null does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NullReferences {
    /// AWS API Gateway (recorded): null and undefined references evaluate
    /// to the empty string. They print nothing (quiet or not), `#if($x)` is
    /// true for them, and `$x == ""` holds.
    #[default]
    Aws,
    /// Stock Apache Velocity 1.7: a null non-quiet reference prints its own
    /// source text (`$name`), and is false in `#if`.
    Velocity,
}

/// Options for [`compile_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    pub null_references: NullReferences,
}

/// Budgets for one render. Exceeding one is a [`RenderError`] with
/// [`RenderErrorKind::LimitExceeded`], except `max_iterations`, which ends
/// the loop quietly like AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Iterations of one `#foreach` before it stops (AWS: 1000).
    pub max_iterations: usize,
    /// Bytes of output. Also bounds every intermediate string, and (times
    /// 8, at least 16 MiB) the data a render may allocate in total.
    pub max_output_bytes: usize,
    /// Evaluation steps (nodes, method calls, and work proportional to the
    /// data a method touches).
    pub max_steps: u64,
    /// Nested macro calls and `#define` renders (capped internally at 100
    /// to protect the stack).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_iterations: 1000,
            max_output_bytes: 10 << 20,
            max_steps: 10_000_000,
            max_depth: 64,
        }
    }
}

/// Request data a template can see.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub body: &'a [u8],
    /// Path parameters (decoded).
    pub path: &'a [(String, String)],
    /// Query parameters in order (decoded); duplicates allowed, single
    /// lookups take the last value.
    pub query: &'a [(String, String)],
    /// Request headers in order; lookups are case-insensitive.
    pub headers: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
    /// Flattened `$context` values, keys like `requestId`,
    /// `identity.sourceIp`, `stage`.
    pub context: &'a BTreeMap<String, String>,
}

/// What the template wrote into `$context.requestOverride` and
/// `$context.responseOverride`, in the order it wrote them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Overrides {
    /// `$context.responseOverride.status`.
    pub status: Option<u16>,
    /// `$context.responseOverride.header.X`.
    pub response_headers: Vec<(String, String)>,
    /// `$context.requestOverride.header.X`.
    pub request_headers: Vec<(String, String)>,
    /// `$context.requestOverride.querystring.X`.
    pub request_query: Vec<(String, String)>,
    /// `$context.requestOverride.path.X`.
    pub request_path: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Rendered {
    pub body: String,
    pub overrides: Overrides,
}

/// Why a render failed, for the caller's choice of response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderErrorKind {
    /// The template read the body with `$input.path`/`$input.json` and the
    /// body is not JSON. AWS answers 400 "Could not parse request body into
    /// json".
    InvalidJsonBody,
    /// A budget in [`Limits`] ran out.
    LimitExceeded,
    /// A Java method or `$util` function failed (bad base64, index out of
    /// range, invalid regex). AWS answers 500.
    Runtime,
    /// An override was written twice, or the status is not an HTTP status.
    /// AWS answers 5XX ("Overrides are final").
    InvalidOverride,
}

/// A failed render, with the template location (1-based line and column)
/// of the construct that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub kind: RenderErrorKind,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for RenderError {}

/// Compiles a template with AWS behaviour. All parsing happens here,
/// including literal JSONPath and regex arguments.
pub fn compile(source: &str) -> Result<Template, TemplateError> {
    compile_with(source, &CompileOptions::default())
}

/// Compiles a template with explicit options.
pub fn compile_with(source: &str, options: &CompileOptions) -> Result<Template, TemplateError> {
    if source.len() > u32::MAX as usize {
        return Err(TemplateError {
            line: 1,
            column: 1,
            message: "template larger than 4 GiB".to_owned(),
        });
    }
    let parsed = parse::parse(source).map_err(|e| {
        let (line, column) = line_col(source, e.pos);
        TemplateError {
            line,
            column,
            message: e.message,
        }
    })?;
    let uses_stage_variables = parsed.uses_stage_variables;
    let output_hint = text_len(&parsed.root);
    let static_output = parsed
        .root
        .iter()
        .try_fold(String::new(), |mut acc, n| match n {
            ast::Node::Text(t) => {
                acc.push_str(t);
                Some(acc)
            }
            _ => None,
        })
        .map(bytes::Bytes::from);
    Ok(Template {
        empty_source: source.chars().all(char::is_whitespace),
        static_output,
        source: source.into(),
        parsed,
        options: options.clone(),
        uses_stage_variables,
        output_hint,
        empty: Arc::from(""),
    })
}

impl Template {
    /// Renders the template for one request.
    pub fn render(&self, input: &Input<'_>, limits: &Limits) -> Result<Rendered, RenderError> {
        let mut m = eval::Machine::new(self, input, limits);
        match m.run() {
            Ok(overrides) => Ok(Rendered {
                body: std::mem::take(&mut m.out),
                overrides,
            }),
            Err(fail) => {
                let (line, column) = line_col(&self.source, fail.pos as usize);
                Err(RenderError {
                    line,
                    column,
                    message: fail.message,
                    kind: fail.kind,
                })
            }
        }
    }

    /// True if the template text is empty or whitespace only (AWS: an
    /// empty `application/json` template means passthrough).
    pub fn is_empty(&self) -> bool {
        self.empty_source
    }

    /// The output of a plain-text template (the same for every request).
    pub fn static_output(&self) -> Option<&str> {
        self.static_output
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// [`Template::static_output`] as shared bytes: a response body
    /// without a copy.
    pub fn static_bytes(&self) -> Option<bytes::Bytes> {
        self.static_output.clone()
    }

    /// The source text the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn text_len(block: &ast::Block) -> usize {
    block
        .iter()
        .map(|n| match n {
            ast::Node::Text(t) => t.len(),
            _ => 8,
        })
        .sum()
}

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_col(source: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(source.len());
    while !source.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &source[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
