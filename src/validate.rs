//! Method request validation, as API Gateway's request validators do it:
//! every required parameter "included and non-blank", then the JSON body
//! against the operation's JSON Schema (draft-04).
//!
//! Owns: compiling one operation's validator from its Swagger 2.0 document
//! when the configuration is loaded ([`compile`]), and checking one request
//! against it ([`MethodValidator::check`]).
//! Sans-IO: the request is seen through [`RequestView`]. Must not: read
//! sockets, clocks or the snapshot, or compile a schema per request.
//! Read first: [`compile`], then [`MethodValidator::check`].
//!
//! What AWS does and what we chose (reference §1.1, "[LS]" = LocalStack's
//! AWS-recorded snapshots and its emulation):
//!
//! 1. Root `x-amazon-apigateway-request-validators` names the validators
//!    (`{validateRequestBody, validateRequestParameters}`, each `false` when
//!    absent). Root `x-amazon-apigateway-request-validator` is the API's
//!    default; the same key on an operation overrides it. No validator, or
//!    one with both flags off, means no validation ([`compile`] returns
//!    `None`).
//! 2. A validator name that is not defined is an error, as AWS fails the
//!    import. So are malformed validator entries and a body schema the
//!    schema crate rejects (AWS refuses such a model: "Invalid model schema
//!    specified"). An unresolvable or unsupported `$ref` is a warning, as a
//!    missing model is for AWS's import; the body of that operation is then
//!    not validated (its parameters still are). `discriminator` is ignored
//!    with a warning, as AWS ignores it.
//! 3. Parameters: the required `path`, `query` and `header` parameters of
//!    the path item and of the operation (`$ref: '#/parameters/X'`
//!    resolved; an operation parameter replaces the path item's one with the
//!    same name and location, per Swagger 2.0). Each must be present with a
//!    value that is not empty or whitespace only: `?q=` and `?q=%20` fail.
//!    Header names match case-insensitively (the [`RequestView`] does it).
//! 4. The missing names are listed as AWS lists them: sorted by the
//!    `method.request.{location}.{name}` key AWS stores them under, so
//!    headers, then path, then query string, each by name (byte order). The
//!    evidence: AWS recorded `[x-header-param, issuer, qs1]` for a method
//!    whose parameters were declared query `qs1`, header `x-header-param`,
//!    then path `issuer` [LS `test_api_gateway_request_validator`], which is
//!    neither declaration order nor plain name order; LocalStack sorts the
//!    keys the same way. Within one location the byte order is inferred from
//!    the same rule, not recorded.
//! 5. Parameters are checked first; only a request with all of them gets its
//!    body checked [LS `method_request.py`].
//! 6. Body: the schema of the operation's `in: body` parameter (the path
//!    item's if the operation has none), with Swagger's `#/definitions/X`
//!    references (nested ones too), compiled as draft-04. It is the model of
//!    the media types in the operation's `consumes` (else the document's,
//!    else `application/json`), as API Gateway's import keys request
//!    models; a request whose `Content-Type` (none counts as
//!    `application/json`, parameters ignored) has no model is not
//!    validated: "If no matching content type is found, request validation
//!    is not performed" (developer guide, "Request validation for REST
//!    APIs"). A body of a modelled type that is not JSON fails. An empty body is validated as `{}`: AWS
//!    rejected an empty-bodied GET against a schema requiring properties,
//!    and LocalStack substitutes `{}` (the same quirk as `$input.body`). An
//!    operation without a body schema has no body validation (LocalStack
//!    would use the `Empty` model, `{"type": "object"}`; that is UNVERIFIED
//!    on AWS).
//! 7. A failed body check carries, besides `Invalid request body`, the text
//!    for `$context.error.validationErrorString`: AWS's validator
//!    (java-json-tools) phrasing, one message per failed keyword, in
//!    brackets, comma-separated, like `[instance type (string) does not
//!    match any allowed primitive type (allowed: ["integer"])]`. The
//!    messages for `type`, `required`, `enum`, `oneOf`, `minimum`/`maximum`,
//!    `minLength`/`maxLength`, `pattern` and the array/object size keywords
//!    follow that library's texts; others are close paraphrases. Values
//!    quoted from the request are cut at [`MAX_QUOTED_CHARS`] characters,
//!    and at most [`MAX_MESSAGES`] messages are listed, so a hostile body
//!    cannot make the error response arbitrarily large. A body over
//!    [`FULL_REPORT_BYTES`] gets only its first message: the validator
//!    builds every error of a keyword before the first is seen (10 MB of
//!    failing array items held a shard for 6 s and 2.7 GB).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{Diagnostic, Diagnostics};
use crate::gateway_response::ResponseType;

const VALIDATORS_KEY: &str = "x-amazon-apigateway-request-validators";
const VALIDATOR_KEY: &str = "x-amazon-apigateway-request-validator";

/// The most validation messages in one `validationErrorString`.
pub const MAX_MESSAGES: usize = 20;
/// The largest body whose failures are all listed (up to [`MAX_MESSAGES`]);
/// a larger one gets its first. Collecting errors costs about 1 µs and
/// 250 bytes per failing value, and a 10 MB body can hold five million of
/// them; 16 KiB bounds that at a few milliseconds and megabytes.
pub const FULL_REPORT_BYTES: usize = 16 * 1024;
/// The longest request value quoted in a validation message, in characters.
pub const MAX_QUOTED_CHARS: usize = 80;

/// The validation of one operation, compiled once. Immutable and
/// `Send + Sync`: share it between shards.
#[derive(Debug)]
pub struct MethodValidator {
    validator: String,
    /// Empty when the validator does not check parameters. Sorted in the
    /// order AWS lists missing names (module docs, 4).
    required: Vec<RequiredParam>,
    /// `None` when the validator does not check bodies, or the operation has
    /// no usable body schema.
    body: Option<BodySchema>,
}

/// Where a required parameter is looked for. The order of the variants is
/// the order of AWS's `method.request.{header|path|querystring}` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParamLocation {
    Header,
    Path,
    Query,
}

impl ParamLocation {
    /// The location as it appears in `method.request.{location}.{name}`.
    pub fn aws_name(self) -> &'static str {
        match self {
            ParamLocation::Header => "header",
            ParamLocation::Path => "path",
            ParamLocation::Query => "querystring",
        }
    }

    fn from_swagger(s: &str) -> Option<ParamLocation> {
        match s {
            "header" => Some(ParamLocation::Header),
            "path" => Some(ParamLocation::Path),
            "query" => Some(ParamLocation::Query),
            _ => None,
        }
    }
}

/// One parameter that must be included and non-blank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredParam {
    pub location: ParamLocation,
    pub name: String,
}

struct BodySchema {
    validator: jsonschema::Validator,
    /// The media types the schema is the model of (lowercase): the
    /// operation's `consumes`, else the document's, else
    /// `application/json` (module docs, 6).
    media_types: Vec<String>,
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySchema").finish_non_exhaustive()
    }
}

/// Why a request failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// 400 `BAD_REQUEST_PARAMETERS`; `message` is the whole message,
    /// `Missing required request parameters: [a, b]`.
    Parameters { message: String },
    /// 400 `BAD_REQUEST_BODY`; `message` is `Invalid request body`, `detail`
    /// the `$context.error.validationErrorString`.
    Body { message: String, detail: String },
}

impl Invalid {
    pub fn response_type(&self) -> ResponseType {
        match self {
            Invalid::Parameters { .. } => ResponseType::BadRequestParameters,
            Invalid::Body { .. } => ResponseType::BadRequestBody,
        }
    }

    /// `$context.error.message`.
    pub fn message(&self) -> &str {
        match self {
            Invalid::Parameters { message } | Invalid::Body { message, .. } => message,
        }
    }

    /// `$context.error.validationErrorString`. For missing parameters it is
    /// the message itself (UNVERIFIED: AWS documents the variable for body
    /// validation only).
    pub fn validation_error_string(&self) -> &str {
        match self {
            Invalid::Parameters { message } => message,
            Invalid::Body { detail, .. } => detail,
        }
    }
}

/// The parts of a request that validation reads. Values are decoded.
pub trait RequestView {
    fn path_param(&self, name: &str) -> Option<String>;
    /// The value of a query parameter (the last one if repeated).
    fn query_param(&self, name: &str) -> Option<String>;
    /// The value of a header, its name matched case-insensitively.
    fn header(&self, name: &str) -> Option<String>;
    fn body(&self) -> &[u8];
}

/// A [`RequestView`] over decoded lists, shaped like `vtl::Input`.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl RequestView for RequestParts<'_> {
    fn path_param(&self, name: &str) -> Option<String> {
        self.path
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn body(&self) -> &[u8] {
        self.body
    }
}

/// Compiles the validator of one operation. `root` is the whole document,
/// `path_item` the path object, `op` the operation object, `jp` the JSON
/// path of the operation (e.g. `$.paths./pets.post`) for diagnostics.
/// Returns `None` when the operation has no validation.
pub fn compile(
    root: &Value,
    path_item: &Map<String, Value>,
    op: &Map<String, Value>,
    file: &Path,
    jp: &str,
    diags: &mut Diagnostics,
) -> Option<MethodValidator> {
    let mut out = Out { file, diags };
    let (name, name_jp) = match op.get(VALIDATOR_KEY) {
        Some(v) => (v, format!("{jp}.{VALIDATOR_KEY}")),
        None => (root.get(VALIDATOR_KEY)?, format!("$.{VALIDATOR_KEY}")),
    };
    let Some(name) = name.as_str() else {
        out.error(
            &name_jp,
            "must be a string: the name of a request validator",
        );
        return None;
    };
    let flags = validator_flags(root, name, &name_jp, &mut out)?;
    if !flags.parameters && !flags.body {
        return None;
    }
    let item_jp = jp.rsplit_once('.').map_or(jp, |(item, _)| item);
    let params = declared_params(root, path_item, op, item_jp, jp, &mut out);
    let mut required = Vec::new();
    if flags.parameters {
        required = params
            .iter()
            .filter_map(|p| match p.kind {
                ParamKind::Located(location) if p.required => Some(RequiredParam {
                    location,
                    name: p.name.clone(),
                }),
                _ => None,
            })
            .collect();
        // AWS's key order (module docs, 4).
        required.sort_by(|a, b| (a.location, &a.name).cmp(&(b.location, &b.name)));
    }
    let mut body = None;
    if flags.body {
        if let Some(p) = params.iter().find(|p| matches!(p.kind, ParamKind::Body)) {
            body = compile_body(root, p.value.get("schema"), &p.jp, &mut out);
            if let Some(b) = body.as_mut() {
                b.media_types = consumes(root, op);
            }
        }
    }
    if required.is_empty() && body.is_none() {
        return None;
    }
    Some(MethodValidator {
        validator: name.to_owned(),
        required,
        body,
    })
}

impl MethodValidator {
    /// Whether the validator checks the request body.
    pub fn checks_body(&self) -> bool {
        self.body.is_some()
    }

    /// Checks one request: parameters first, then the body.
    pub fn check(&self, req: &dyn RequestView) -> Result<(), Invalid> {
        let missing: Vec<&str> = self
            .required
            .iter()
            .filter(|p| {
                let value = match p.location {
                    ParamLocation::Header => req.header(&p.name),
                    ParamLocation::Path => req.path_param(&p.name),
                    ParamLocation::Query => req.query_param(&p.name),
                };
                // "Included and non-blank": Java's `isBlank`, so whitespace
                // only counts as blank.
                value.is_none_or(|v| v.trim().is_empty())
            })
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Invalid::Parameters {
                message: format!(
                    "Missing required request parameters: [{}]",
                    missing.join(", ")
                ),
            });
        }
        match &self.body {
            Some(schema) if schema.models(req.header("content-type").as_deref()) => {
                schema.check(req.body())
            }
            _ => Ok(()),
        }
    }

    /// The name of the request validator in force.
    pub fn validator_name(&self) -> &str {
        &self.validator
    }

    /// The parameters checked, in the order AWS lists them.
    pub fn required_params(&self) -> &[RequiredParam] {
        &self.required
    }

    /// True if request bodies are checked against a schema.
    pub fn validates_body(&self) -> bool {
        self.body.is_some()
    }
}

/// The media types an operation's body model is declared for (module
/// docs, 6).
fn consumes(root: &Value, op: &Map<String, Value>) -> Vec<String> {
    let listed: Vec<String> = op
        .get("consumes")
        .or_else(|| root.get("consumes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|t| media_type(t).to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        vec!["application/json".to_owned()]
    } else {
        listed
    }
}

/// The media type of a `Content-Type` value, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

impl BodySchema {
    /// Whether this schema is the model for a request of this
    /// `Content-Type` (none counts as `application/json`, as API Gateway
    /// counts it).
    fn models(&self, content_type: Option<&str>) -> bool {
        let t = content_type.map_or("", media_type);
        let t = if t.is_empty() { "application/json" } else { t };
        self.media_types.iter().any(|m| m.eq_ignore_ascii_case(t))
    }

    fn check(&self, body: &[u8]) -> Result<(), Invalid> {
        let instance = if body.is_empty() {
            // Module docs, 6: AWS validates an empty body as `{}`.
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => v,
                Err(e) => {
                    return Err(invalid_body(format!(
                        "[request body is not valid JSON: {e}]"
                    )))
                }
            }
        };
        // The fast path stops at the first failure; the messages are only
        // built for bodies that fail.
        if self.validator.is_valid(&instance) {
            return Ok(());
        }
        let mut messages: Vec<Message> = Vec::new();
        let errors: Box<dyn Iterator<Item = jsonschema::ValidationError<'_>>> =
            if body.len() > FULL_REPORT_BYTES {
                // `validate` stops at the first failure.
                Box::new(self.validator.validate(&instance).err().into_iter())
            } else {
                Box::new(self.validator.iter_errors(&instance))
            };
        for error in errors {
            let message = describe(&error);
            // java-json-tools reports all missing properties of one object in
            // one message; the crate reports one error per property.
            if let (MessageKind::Required(name), Some(last)) = (&message.kind, messages.last_mut())
            {
                if let MessageKind::Required(names) = &mut last.kind {
                    if last.instance_path == message.instance_path {
                        names.push(',');
                        names.push_str(name);
                        continue;
                    }
                }
            }
            if messages.len() == MAX_MESSAGES {
                break;
            }
            messages.push(message);
        }
        let mut detail = String::from("[");
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                detail.push_str(", ");
            }
            match &m.kind {
                MessageKind::Required(names) => {
                    let _ = write!(detail, "object has missing required properties ([{names}])");
                }
                MessageKind::Text(text) => detail.push_str(text),
            }
        }
        detail.push(']');
        Err(invalid_body(detail))
    }
}

fn invalid_body(detail: String) -> Invalid {
    Invalid::Body {
        message: "Invalid request body".to_owned(),
        detail,
    }
}

struct Message {
    instance_path: String,
    kind: MessageKind,
}

enum MessageKind {
    /// Missing properties, each a JSON string, comma-separated.
    Required(String),
    Text(String),
}

/// One error in java-json-tools' words (module docs, 7).
fn describe(error: &jsonschema::ValidationError<'_>) -> Message {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let instance: &Value = error.instance();
    let text = match error.kind() {
        K::Required { property } => {
            return Message {
                instance_path: error.instance_path().as_str().to_owned(),
                kind: MessageKind::Required(quote(property)),
            }
        }
        K::Type { kind } => {
            let mut allowed: Vec<&str> = match kind {
                TypeKind::Single(t) => vec![t.as_str()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect(),
            };
            // java-json-tools lists them from an `EnumSet`: alphabetically.
            allowed.sort_unstable();
            format!(
                "instance type ({}) does not match any allowed primitive type (allowed: {})",
                type_name(instance),
                json_strings(allowed)
            )
        }
        K::Enum { options } => format!(
            "instance value ({}) not found in enum (possible values: {})",
            quote(instance),
            quote(options)
        ),
        K::AdditionalProperties { unexpected } => format!(
            "object instance has properties which are not allowed by the schema: {}",
            json_strings(unexpected.iter().map(String::as_str))
        ),
        K::Maximum { limit } => format!(
            "numeric instance is greater than the required maximum (maximum: {limit}, found: {instance})"
        ),
        K::ExclusiveMaximum { limit } => {
            format!("numeric instance is not strictly lower than the required maximum {limit}")
        }
        K::Minimum { limit } => format!(
            "numeric instance is lower than the required minimum (minimum: {limit}, found: {instance})"
        ),
        K::ExclusiveMinimum { limit } => {
            format!("numeric instance is not strictly greater than the required minimum {limit}")
        }
        K::MaxLength { limit } => format!(
            "string {} is too long (length: {}, maximum allowed: {limit})",
            quote(instance),
            str_len(instance)
        ),
        K::MinLength { limit } => format!(
            "string {} is too short (length: {}, required minimum: {limit})",
            quote(instance),
            str_len(instance)
        ),
        K::Pattern { pattern } => format!(
            "ECMA 262 regex {} does not match input string {}",
            quote(&Value::String(pattern.clone())),
            quote(instance)
        ),
        K::MaxItems { limit } => format!(
            "array is too long: must have at most {limit} elements but instance has {} elements",
            array_len(instance)
        ),
        K::AdditionalItems { limit } => format!(
            "array is too long: must have at most {limit} elements but instance has {} elements",
            array_len(instance)
        ),
        K::MinItems { limit } => format!(
            "array is too short: must have at least {limit} elements but instance has {} elements",
            array_len(instance)
        ),
        K::UniqueItems => "array must not contain duplicate elements".to_owned(),
        K::MaxProperties { limit } => format!(
            "object has too many properties (found {} but schema requires at most {limit})",
            object_len(instance)
        ),
        K::MinProperties { limit } => format!(
            "object has too few properties (found {} but schema requires at least {limit})",
            object_len(instance)
        ),
        K::MultipleOf { multiple_of } => {
            format!("remainder of division is not zero ({instance} / {multiple_of})")
        }
        K::OneOfNotValid { context } | K::OneOfMultipleValid { context } => format!(
            "instance failed to match exactly one schema (matched {} out of {})",
            context.iter().filter(|branch| branch.is_empty()).count(),
            context.len()
        ),
        K::AnyOf { context } => format!(
            "instance failed to match at least one required schema among {}",
            context.len()
        ),
        K::Not { .. } => "instance matched a schema which it should not have".to_owned(),
        K::Format { format } => format!("string {} is not a valid {format}", quote(instance)),
        // Keywords draft-04 does not have, and engine failures (regex
        // backtracking limits): the crate's own words, which may quote the
        // instance, so cut them too.
        _ => cut(error.to_string(), 4 * MAX_QUOTED_CHARS),
    };
    Message {
        instance_path: error.instance_path().as_str().to_owned(),
        kind: MessageKind::Text(text),
    }
}

/// java-json-tools names integers `integer` (Jackson keeps `1.0` a double,
/// as serde_json does).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn json_strings<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let items: Vec<Value> = items
        .into_iter()
        .map(|s| Value::String(s.to_owned()))
        .collect();
    Value::Array(items).to_string()
}

/// A value as compact JSON, cut to [`MAX_QUOTED_CHARS`] characters.
fn quote(v: &Value) -> String {
    cut(v.to_string(), MAX_QUOTED_CHARS)
}

/// The first `max` characters of `text`, and `...` if there were more.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if let Some((end, _)) = text.char_indices().nth(max) {
        text.truncate(end);
        text.push_str("...");
    }
    text
}

fn str_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn array_len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn object_len(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

/// Reports diagnostics once each: the API-level keys are looked at again by
/// every operation that uses them.
struct Out<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
}

impl Out<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message.into());
        if !self.diags.errors.contains(&d) {
            self.diags.errors.push(d);
        }
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diagnostic(path, message.into());
        if !self.diags.warnings.contains(&d) {
            self.diags.warnings.push(d);
        }
    }

    fn diagnostic(&self, path: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_path_buf(),
            path: path.to_owned(),
            message,
        }
    }
}

struct Flags {
    parameters: bool,
    body: bool,
}

/// Looks up the named validator; `None` (with an error) if it cannot be used.
fn validator_flags(root: &Value, name: &str, name_jp: &str, out: &mut Out<'_>) -> Option<Flags> {
    let Some(validators) = root.get(VALIDATORS_KEY) else {
        out.error(
            name_jp,
            format!(
                "request validator `{name}` is not defined: the document has no {VALIDATORS_KEY}"
            ),
        );
        return None;
    };
    let Some(validators) = validators.as_object() else {
        out.error(
            &format!("$.{VALIDATORS_KEY}"),
            "must be an object: validator name → {validateRequestBody, validateRequestParameters}",
        );
        return None;
    };
    let Some(def) = validators.get(name) else {
        let known: Vec<&str> = validators.keys().map(String::as_str).collect();
        out.error(
            name_jp,
            format!(
                "request validator `{name}` is not defined in {VALIDATORS_KEY} (defined: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
        return None;
    };
    let def_jp = format!("$.{VALIDATORS_KEY}.{name}");
    let Some(def) = def.as_object() else {
        out.error(
            &def_jp,
            "must be an object: {validateRequestBody, validateRequestParameters}",
        );
        return None;
    };
    let mut flag = |key: &str| match def.get(key) {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            out.error(&format!("{def_jp}.{key}"), "must be true or false");
            None
        }
    };
    let body = flag("validateRequestBody");
    let parameters = flag("validateRequestParameters");
    Some(Flags {
        parameters: parameters?,
        body: body?,
    })
}

enum ParamKind {
    Located(ParamLocation),
    Body,
}

struct Param<'a> {
    kind: ParamKind,
    name: String,
    required: bool,
    value: &'a Map<String, Value>,
    /// The JSON path of the parameter's declaration (after `$ref`).
    jp: String,
}

/// The parameters of an operation: the path item's, then the operation's,
/// an operation parameter replacing the path item's with the same name and
/// location. `formData` parameters are left out (API Gateway has none).
fn declared_params<'a>(
    root: &'a Value,
    path_item: &'a Map<String, Value>,
    op: &'a Map<String, Value>,
    item_jp: &str,
    op_jp: &str,
    out: &mut Out<'_>,
) -> Vec<Param<'a>> {
    let mut params: Vec<Param<'a>> = Vec::new();
    for (list, list_jp) in [(path_item, item_jp), (op, op_jp)] {
        let Some(list) = list.get("parameters").and_then(Value::as_array) else {
            continue;
        };
        for (i, p) in list.iter().enumerate() {
            let mut jp = format!("{list_jp}.parameters[{i}]");
            let mut p = p;
            if let Some(r) = p.get("$ref") {
                let target = r
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                    .and_then(|ptr| root.pointer(ptr));
                match target {
                    Some(t) => {
                        jp = pointer_to_jp(r.as_str().unwrap_or_default());
                        p = t;
                    }
                    None => {
                        out.warn(
                            &format!("{jp}.$ref"),
                            format!(
                                "unresolvable parameter $ref {r}: this parameter is not validated"
                            ),
                        );
                        continue;
                    }
                }
            }
            let Some(obj) = p.as_object() else {
                continue;
            };
            let (Some(name), Some(location)) = (
                obj.get("name").and_then(Value::as_str),
                obj.get("in").and_then(Value::as_str),
            ) else {
                continue;
            };
            let kind = match location {
                "body" => ParamKind::Body,
                other => match ParamLocation::from_swagger(other) {
                    Some(l) => ParamKind::Located(l),
                    None => continue,
                },
            };
            let param = Param {
                kind,
                name: name.to_owned(),
                required: obj.get("required") == Some(&Value::Bool(true)),
                value: obj,
                jp,
            };
            params.retain(|q| !same_param(q, &param));
            params.push(param);
        }
    }
    params
}

/// Swagger 2.0: a parameter is identified by its name and location; there
/// is at most one body parameter, whatever its name. Header names are
/// case-insensitive.
fn same_param(a: &Param<'_>, b: &Param<'_>) -> bool {
    match (&a.kind, &b.kind) {
        (ParamKind::Body, ParamKind::Body) => true,
        (ParamKind::Located(x), ParamKind::Located(y)) if x == y => {
            if *x == ParamLocation::Header {
                a.name.eq_ignore_ascii_case(&b.name)
            } else {
                a.name == b.name
            }
        }
        _ => false,
    }
}

/// `#/parameters/a~1b` → `$.parameters.a/b`, the notation of diagnostics.
fn pointer_to_jp(reference: &str) -> String {
    let mut jp = String::from("$");
    for segment in reference.trim_start_matches('#').split('/').skip(1) {
        jp.push('.');
        jp.push_str(&unescape_pointer(segment));
    }
    jp
}

fn unescape_pointer(segment: &str) -> Cow<'_, str> {
    if segment.contains('~') {
        Cow::Owned(segment.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Compiles a body schema with the definitions it reaches. `None` when it
/// cannot be used (the reason is in the diagnostics).
fn compile_body(
    root: &Value,
    schema: Option<&Value>,
    param_jp: &str,
    out: &mut Out<'_>,
) -> Option<BodySchema> {
    let schema_jp = format!("{param_jp}.schema");
    let Some(schema) = schema else {
        out.warn(
            param_jp,
            "body parameter without `schema`: the request body is not validated",
        );
        return None;
    };
    if !schema.is_object() {
        out.error(&schema_jp, "must be a JSON Schema object");
        return None;
    }
    let mut walk = Walk {
        root,
        definitions: Vec::new(),
        usable: true,
    };
    walk.schema(schema, &schema_jp, out);
    if !walk.usable {
        return None;
    }
    // Swagger's references point into the whole document; the schema is
    // compiled as a document of its own that carries the definitions it
    // reaches, so `#/definitions/X` means the same in both.
    let mut document = schema.clone();
    if let (Value::Object(doc), false) = (&mut document, walk.definitions.is_empty()) {
        let all = root.get("definitions").and_then(Value::as_object);
        let mut reached = Map::new();
        for name in &walk.definitions {
            if let Some(def) = all.and_then(|all| all.get(name)) {
                reached.insert(name.clone(), def.clone());
            }
        }
        doc.insert("definitions".to_owned(), Value::Object(reached));
    }
    match jsonschema::draft4::options().build(&document) {
        Ok(validator) => Some(BodySchema {
            validator,
            media_types: vec!["application/json".to_owned()],
        }),
        Err(e) => {
            out.error(
                &schema_jp,
                format!("invalid request body schema (JSON Schema draft-04): {e}"),
            );
            None
        }
    }
}

/// Walks a schema and the definitions it references: collects them, and
/// reports what API Gateway would not accept.
struct Walk<'a> {
    root: &'a Value,
    /// Names of the definitions reached, in the order found.
    definitions: Vec<String>,
    /// False once a reference cannot be followed.
    usable: bool,
}

impl Walk<'_> {
    fn schema(&mut self, v: &Value, jp: &str, out: &mut Out<'_>) {
        let Some(obj) = v.as_object() else {
            return;
        };
        for (key, child) in obj {
            let child_jp = format!("{jp}.{key}");
            match key.as_str() {
                "$ref" => self.reference(child, &child_jp, out),
                "discriminator" => out.warn(
                    &child_jp,
                    "`discriminator` is not supported by API Gateway models; ignored",
                ),
                "properties" | "patternProperties" | "definitions" | "dependencies" => {
                    for (name, sub) in child.as_object().into_iter().flatten() {
                        self.schema(sub, &format!("{child_jp}.{name}"), out);
                    }
                }
                "items" | "allOf" | "anyOf" | "oneOf" => match child {
                    Value::Array(subs) => {
                        for (i, sub) in subs.iter().enumerate() {
                            self.schema(sub, &format!("{child_jp}[{i}]"), out);
                        }
                    }
                    sub => self.schema(sub, &child_jp, out),
                },
                "additionalProperties" | "additionalItems" | "not" => {
                    self.schema(child, &child_jp, out);
                }
                // Everything else holds data (`enum`, `default`, `example`,
                // `x-*`) or numbers and strings: no schemas inside.
                _ => {}
            }
        }
    }

    fn reference(&mut self, r: &Value, jp: &str, out: &mut Out<'_>) {
        let Some(r) = r.as_str() else {
            out.error(jp, "$ref must be a string");
            self.usable = false;
            return;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            out.warn(
                jp,
                format!("external $ref `{r}` is not supported (API Gateway models can only reference models of the same API): the request body is not validated"),
            );
            self.usable = false;
            return;
        };
        let Some(name) = pointer.strip_prefix("/definitions/") else {
            out.warn(
                jp,
                format!("$ref `{r}` is not supported in schemas (only #/definitions/...): the request body is not validated"),
            );
            self.usable = false;
            return;
        };
        let name = unescape_pointer(name.split('/').next().unwrap_or_default()).into_owned();
        if self.root.pointer(pointer).is_none() {
            out.warn(
                jp,
                format!("unresolvable $ref `{r}`: the request body is not validated"),
            );
            self.usable = false;
            return;
        }
        if self.definitions.contains(&name) {
            return;
        }
        self.definitions.push(name.clone());
        if let Some(def) = self.root.get("definitions").and_then(|d| d.get(&name)) {
            let def_jp = format!("$.definitions.{name}");
            self.schema(def, &def_jp, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "swagger": "2.0",
            "x-amazon-apigateway-request-validators": {
                "all": {"validateRequestBody": true, "validateRequestParameters": true},
                "params-only": {"validateRequestParameters": true},
                "body-only": {"validateRequestBody": true, "validateRequestParameters": false},
                "none": {}
            },
            "x-amazon-apigateway-request-validator": "all",
            "parameters": {
                "Issuer": {"name": "issuer", "in": "path", "required": true, "type": "string"},
                "Trace": {"name": "X-Trace", "in": "header", "required": true, "type": "string"}
            },
            "definitions": {
                "Pet": {
                    "type": "object",
                    "required": ["name", "age"],
                    "properties": {
                        "name": {"type": "string", "minLength": 2},
                        "age": {"type": "integer", "minimum": 0},
                        "owner": {"$ref": "#/definitions/Owner"},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
                    }
                },
                "Owner": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}
                },
                "Cat": {"type": "object", "required": ["meow"], "properties": {"meow": {"type": "boolean"}}},
                "Dog": {"type": "object", "required": ["bark"], "properties": {"bark": {"type": "boolean"}}},
                "Loop": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Loop"}}},
                "Unrelated": {"type": 5}
            },
            "paths": {
                "/pets/{id}": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": true, "type": "string"},
                        {"name": "shared", "in": "query", "required": true, "type": "string"}
                    ],
                    "post": {
                        "parameters": [
                            {"name": "qs1", "in": "query", "required": true, "type": "string"},
                            {"name": "x-header-param", "in": "header", "required": true, "type": "string"},
                            {"$ref": "#/parameters/Issuer"},
                            {"name": "opt", "in": "query", "required": false, "type": "string"},
                            {"name": "shared", "in": "query", "required": false, "type": "string"},
                            {"name": "form", "in": "formData", "required": true, "type": "string"},
                            {"name": "pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}
                        ]
                    },
                    "put": {
                        "x-amazon-apigateway-request-validator": "params-only",
                        "parameters": [
                            {"name": "pet", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}
                        ]
                    },
                    "patch": {
                        "x-amazon-apigateway-request-validator": "body-only",
                        "parameters": [
                            {"name": "pet", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}
                        ]
                    },
                    "delete": {"x-amazon-apigateway-request-validator": "none"}
                },
                "/animals": {
                    "post": {
                        "parameters": [
                            {"$ref": "#/parameters/Trace"},
                            {"name": "a", "in": "body", "schema": {
                                "oneOf": [{"$ref": "#/definitions/Cat"}, {"$ref": "#/definitions/Dog"}]
                            }}
                        ]
                    },
                    "put": {
                        "parameters": [{"name": "a", "in": "body", "schema": {
                            "allOf": [{"$ref": "#/definitions/Cat"}, {"$ref": "#/definitions/Dog"}]
                        }}]
                    },
                    "patch": {
                        "parameters": [{"name": "a", "in": "body", "schema": {"$ref": "#/definitions/Loop"}}]
                    },
                    "get": {
                        "parameters": [{"name": "q", "in": "query", "type": "string"}]
                    }
                },
                "/inline": {
                    "post": {
                        "parameters": [{"name": "b", "in": "body", "schema": {
                            "type": "object",
                            "properties": {"n": {"type": ["integer", "null"], "enum": [1, 2, null]}},
                            "additionalProperties": false
                        }}]
                    }
                }
            }
        })
    }

    fn compile_op(
        root: &Value,
        path: &str,
        method: &str,
    ) -> (Option<MethodValidator>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let item = root["paths"][path].as_object().unwrap();
        let op = item[method].as_object().unwrap();
        let v = compile(
            root,
            item,
            op,
            Path::new("api.json"),
            &format!("$.paths.{path}.{method}"),
            &mut diags,
        );
        (v, diags)
    }

    struct Req {
        path: Vec<(String, String)>,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        body: String,
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PET: &str = r#"{"name":"Rex","age":3}"#;

    fn full(body: &str) -> Req {
        Req {
            path: pairs(&[("id", "1"), ("issuer", "me")]),
            query: pairs(&[("qs1", "a"), ("shared", "s")]),
            headers: pairs(&[("X-Header-Param", "h")]),
            body: body.to_owned(),
        }
    }

    fn check(v: &MethodValidator, r: &Req) -> Result<(), Invalid> {
        v.check(&RequestParts {
            path: &r.path,
            query: &r.query,
            headers: &r.headers,
            body: r.body.as_bytes(),
        })
    }

    fn params_err(names: &str) -> Result<(), Invalid> {
        Err(Invalid::Parameters {
            message: format!("Missing required request parameters: [{names}]"),
        })
    }

    #[test]
    fn required_parameters() {
        let root = doc();
        let (v, diags) = compile_op(&root, "/pets/{id}", "post");
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let v = v.unwrap();
        type Edit = fn(&mut Req);
        let cases: &[(&str, Edit, Result<(), Invalid>)] = &[
            ("all present", |_| {}, Ok(())),
            (
                "header name case-insensitive",
                |r| r.headers = pairs(&[("x-HEADER-param", "h")]),
                Ok(()),
            ),
            (
                "query missing",
                |r| r.query = pairs(&[("shared", "s")]),
                params_err("qs1"),
            ),
            (
                "query blank",
                |r| r.query = pairs(&[("qs1", ""), ("shared", "s")]),
                params_err("qs1"),
            ),
            (
                "query whitespace is blank",
                |r| r.query = pairs(&[("qs1", " \t"), ("shared", "s")]),
                params_err("qs1"),
            ),
            (
                "repeated query: the last value counts",
                |r| r.query = pairs(&[("qs1", "x"), ("qs1", ""), ("shared", "s")]),
                params_err("qs1"),
            ),
            (
                "header missing",
                |r| r.headers.clear(),
                params_err("x-header-param"),
            ),
            (
                "header blank",
                |r| r.headers = pairs(&[("x-header-param", "")]),
                params_err("x-header-param"),
            ),
            (
                "path missing",
                |r| r.path = pairs(&[("id", "1")]),
                params_err("issuer"),
            ),
            (
                "path blank",
                |r| r.path = pairs(&[("id", "1"), ("issuer", "")]),
                params_err("issuer"),
            ),
            (
                "operation-level required:false overrides path-level required",
                |r| r.query = pairs(&[("qs1", "a")]),
                Ok(()),
            ),
            (
                // The AWS recording: header, then path, then query string.
                "everything missing, AWS order",
                |r| {
                    r.path.clear();
                    r.query.clear();
                    r.headers.clear();
                },
                params_err("x-header-param, id, issuer, qs1"),
            ),
            (
                "parameters are checked before the body",
                |r| {
                    r.query.clear();
                    r.body = "not json".to_owned();
                },
                params_err("qs1"),
            ),
        ];
        for (name, edit, want) in cases {
            let mut r = full(PET);
            edit(&mut r);
            assert_eq!(&check(&v, &r), want, "{name}");
        }
        let order: Vec<(ParamLocation, &str)> = v
            .required_params()
            .iter()
            .map(|p| (p.location, p.name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (ParamLocation::Header, "x-header-param"),
                (ParamLocation::Path, "id"),
                (ParamLocation::Path, "issuer"),
                (ParamLocation::Query, "qs1"),
            ]
        );
        assert_eq!(v.validator_name(), "all");
    }

    fn body_err(detail: &str) -> Result<(), Invalid> {
        Err(Invalid::Body {
            message: "Invalid request body".to_owned(),
            detail: detail.to_owned(),
        })
    }

    #[test]
    fn body_against_ref_schema() {
        let root = doc();
        let (v, diags) = compile_op(&root, "/pets/{id}", "post");
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        assert!(diags.warnings.is_empty(), "{:?}", diags.warnings);
        let v = v.unwrap();
        let cases: &[(&str, &str, Result<(), Invalid>)] = &[
            ("valid", PET, Ok(())),
            ("valid with nested ref", r#"{"name":"Rex","age":3,"owner":{"id":"bob"}}"#, Ok(())),
            (
                "wrong type",
                r#"{"name":"Rex","age":"3"}"#,
                body_err(r#"[instance type (string) does not match any allowed primitive type (allowed: ["integer"])]"#),
            ),
            (
                "float is a number, not an integer",
                r#"{"name":"Rex","age":3.0}"#,
                body_err(r#"[instance type (number) does not match any allowed primitive type (allowed: ["integer"])]"#),
            ),
            (
                "missing properties in one message",
                r#"{}"#,
                body_err(r#"[object has missing required properties (["name","age"])]"#),
            ),
            (
                // AWS validates an empty body as `{}`.
                "empty body",
                "",
                body_err(r#"[object has missing required properties (["name","age"])]"#),
            ),
            (
                "not JSON",
                "<pet/>",
                body_err("[request body is not valid JSON: expected value at line 1 column 1]"),
            ),
            (
                "nested ref fails",
                r#"{"name":"Rex","age":3,"owner":{"id":"B0b"}}"#,
                body_err(r#"[ECMA 262 regex "^[a-z]+$" does not match input string "B0b"]"#),
            ),
            (
                "nested ref required",
                r#"{"name":"Rex","age":3,"owner":{}}"#,
                body_err(r#"[object has missing required properties (["id"])]"#),
            ),
            (
                "several failures",
                r#"{"name":"R","age":-1,"tags":["a","b","c"]}"#,
                body_err("[string \"R\" is too short (length: 1, required minimum: 2), numeric instance is lower than the required minimum (minimum: 0, found: -1), array is too long: must have at most 2 elements but instance has 3 elements]"),
            ),
            (
                "not an object",
                "[1]",
                body_err(r#"[instance type (array) does not match any allowed primitive type (allowed: ["object"])]"#),
            ),
        ];
        for (name, body, want) in cases {
            assert_eq!(&check(&v, &full(body)), want, "{name}");
        }
    }

    /// Every failure of a small body is listed (up to `MAX_MESSAGES`); a
    /// body over `FULL_REPORT_BYTES` gets its first only, found without
    /// building an error per failing value (a 10 MB array of failing items
    /// held a shard for seconds and gigabytes).
    #[test]
    fn large_bodies_report_their_first_failure() {
        let root = doc();
        let (v, _) = compile_op(&root, "/pets/{id}", "patch");
        let v = v.unwrap();
        let body_with = |n: usize| {
            let tags = vec!["1"; n].join(",");
            format!(r#"{{"name":"Rex","age":3,"tags":[{tags}]}}"#)
        };
        let detail = |body: &str| match check(&v, &full(body)) {
            Err(Invalid::Body { detail, .. }) => detail,
            other => panic!("{other:?}"),
        };
        let small = detail(&body_with(100));
        assert_eq!(
            small.matches("does not match").count(),
            MAX_MESSAGES - 1,
            "{small}"
        );
        let big = body_with(FULL_REPORT_BYTES);
        assert!(big.len() > FULL_REPORT_BYTES);
        assert_eq!(
            detail(&big),
            format!(
                "[array is too long: must have at most 2 elements but instance has {FULL_REPORT_BYTES} elements]"
            )
        );
    }

    #[test]
    fn body_combinators_and_inline() {
        let root = doc();
        let cases: &[(&str, &str, &str, Result<(), Invalid>)] = &[
            ("/animals", "post", r#"{"meow":true}"#, Ok(())),
            ("/animals", "post", r#"{"bark":false}"#, Ok(())),
            (
                "/animals",
                "post",
                r#"{"meow":true,"bark":true}"#,
                body_err("[instance failed to match exactly one schema (matched 2 out of 2)]"),
            ),
            (
                "/animals",
                "post",
                r#"{"purr":true}"#,
                body_err("[instance failed to match exactly one schema (matched 0 out of 2)]"),
            ),
            ("/animals", "put", r#"{"meow":true,"bark":true}"#, Ok(())),
            (
                "/animals",
                "put",
                r#"{"meow":true}"#,
                body_err(r#"[object has missing required properties (["bark"])]"#),
            ),
            ("/animals", "patch", r#"{"next":{"next":{}}}"#, Ok(())),
            (
                "/animals",
                "patch",
                r#"{"next":{"next":1}}"#,
                body_err(
                    r#"[instance type (integer) does not match any allowed primitive type (allowed: ["object"])]"#,
                ),
            ),
            ("/inline", "post", r#"{"n":null}"#, Ok(())),
            ("/inline", "post", "", Ok(())),
            (
                "/inline",
                "post",
                r#"{"n":3}"#,
                body_err("[instance value (3) not found in enum (possible values: [1,2,null])]"),
            ),
            (
                "/inline",
                "post",
                r#"{"n":"x"}"#,
                body_err(
                    r#"[instance type (string) does not match any allowed primitive type (allowed: ["integer","null"]), instance value ("x") not found in enum (possible values: [1,2,null])]"#,
                ),
            ),
            (
                "/inline",
                "post",
                r#"{"m":1}"#,
                body_err(
                    r#"[object instance has properties which are not allowed by the schema: ["m"]]"#,
                ),
            ),
        ];
        for (path, method, body, want) in cases {
            let (v, diags) = compile_op(&root, path, method);
            assert!(
                diags.errors.is_empty(),
                "{path} {method}: {:?}",
                diags.errors
            );
            let v = v.unwrap();
            let r = Req {
                path: Vec::new(),
                query: Vec::new(),
                headers: pairs(&[("x-trace", "t")]),
                body: body.to_string(),
            };
            assert_eq!(&check(&v, &r), want, "{path} {method} {body}");
        }
    }

    #[test]
    fn validator_selection() {
        // (path, method, validator in force, checks params, checks body)
        let cases: &[(&str, &str, Option<&str>, bool, bool)] = &[
            ("/pets/{id}", "post", Some("all"), true, true),
            ("/pets/{id}", "put", Some("params-only"), true, false),
            ("/pets/{id}", "patch", Some("body-only"), false, true),
            ("/pets/{id}", "delete", None, false, false),
            // The API default with nothing to check: no required parameter,
            // no body schema.
            ("/animals", "get", None, false, false),
        ];
        let root = doc();
        for (path, method, name, params, body) in cases {
            let (v, diags) = compile_op(&root, path, method);
            assert!(
                diags.errors.is_empty(),
                "{path} {method}: {:?}",
                diags.errors
            );
            assert_eq!(
                v.as_ref().map(|v| v.validator_name()),
                *name,
                "{path} {method}"
            );
            if let Some(v) = v {
                assert_eq!(!v.required_params().is_empty(), *params, "{path} {method}");
                assert_eq!(v.validates_body(), *body, "{path} {method}");
            }
        }
        // params-only ignores a bad body; body-only ignores missing params.
        let (put, _) = compile_op(&root, "/pets/{id}", "put");
        assert_eq!(check(&put.unwrap(), &full("garbage")), Ok(()));
        let (patch, _) = compile_op(&root, "/pets/{id}", "patch");
        let bare = Req {
            path: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: PET.to_owned(),
        };
        assert_eq!(check(patch.as_ref().unwrap(), &bare), Ok(()));

        // Without an API default, only operations that name a validator
        // validate.
        let mut root = doc();
        root.as_object_mut().unwrap().remove(VALIDATOR_KEY);
        assert!(compile_op(&root, "/pets/{id}", "post").0.is_none());
        assert!(compile_op(&root, "/pets/{id}", "put").0.is_some());
    }

    #[test]
    fn diagnostics() {
        type Edit = fn(&mut Value);
        // (edit, path, method, error or warning, JSON path, message part)
        let cases: &[(Edit, &str, &str, bool, &str, &str)] = &[
            (
                |d| d["paths"]["/pets/{id}"]["put"][VALIDATOR_KEY] = json!("nope"),
                "/pets/{id}",
                "put",
                true,
                "$.paths./pets/{id}.put.x-amazon-apigateway-request-validator",
                "request validator `nope` is not defined",
            ),
            (
                |d| d[VALIDATOR_KEY] = json!("nope"),
                "/pets/{id}",
                "post",
                true,
                "$.x-amazon-apigateway-request-validator",
                "`nope` is not defined",
            ),
            (
                |d| {
                    d.as_object_mut().unwrap().remove(VALIDATORS_KEY);
                },
                "/pets/{id}",
                "post",
                true,
                "$.x-amazon-apigateway-request-validator",
                "the document has no x-amazon-apigateway-request-validators",
            ),
            (
                |d| d[VALIDATORS_KEY]["all"]["validateRequestBody"] = json!("yes"),
                "/pets/{id}",
                "post",
                true,
                "$.x-amazon-apigateway-request-validators.all.validateRequestBody",
                "must be true or false",
            ),
            (
                |d| d[VALIDATOR_KEY] = json!(3),
                "/pets/{id}",
                "post",
                true,
                "$.x-amazon-apigateway-request-validator",
                "must be a string",
            ),
            (
                |d| {
                    d["definitions"]["Pet"]["properties"]["owner"]["$ref"] =
                        json!("#/definitions/Nobody")
                },
                "/pets/{id}",
                "post",
                false,
                "$.definitions.Pet.properties.owner.$ref",
                "unresolvable $ref `#/definitions/Nobody`: the request body is not validated",
            ),
            (
                |d| {
                    d["definitions"]["Pet"]["properties"]["owner"]["$ref"] =
                        json!("other.json#/Owner")
                },
                "/pets/{id}",
                "post",
                false,
                "$.definitions.Pet.properties.owner.$ref",
                "external $ref `other.json#/Owner` is not supported",
            ),
            (
                |d| d["definitions"]["Pet"]["discriminator"] = json!("kind"),
                "/pets/{id}",
                "post",
                false,
                "$.definitions.Pet.discriminator",
                "`discriminator` is not supported",
            ),
            (
                |d| d["definitions"]["Owner"]["properties"]["id"]["type"] = json!("file"),
                "/pets/{id}",
                "post",
                true,
                "$.paths./pets/{id}.post.parameters[6].schema",
                "invalid request body schema",
            ),
            (
                |d| {
                    d["paths"]["/pets/{id}"]["post"]["parameters"][2] =
                        json!({"$ref": "#/parameters/Nope"})
                },
                "/pets/{id}",
                "post",
                false,
                "$.paths./pets/{id}.post.parameters[2].$ref",
                "unresolvable parameter $ref",
            ),
        ];
        for (edit, path, method, is_error, jp, part) in cases {
            let mut root = doc();
            edit(&mut root);
            let (_, diags) = compile_op(&root, path, method);
            let list = if *is_error {
                &diags.errors
            } else {
                &diags.warnings
            };
            assert!(
                list.iter()
                    .any(|d| d.path == *jp && d.message.contains(part)),
                "{jp}: {part}\nerrors: {:?}\nwarnings: {:?}",
                diags.errors,
                diags.warnings
            );
        }
    }

    #[test]
    fn draft04_keywords() {
        let mut root = doc();
        root["paths"]["/inline"]["post"]["parameters"][0]["schema"] = json!({
            "type": "object",
            "discriminator": "kind",
            "example": {"n": 1},
            "x-vendor": true,
            "properties": {
                "n": {"type": "number", "maximum": 10, "exclusiveMaximum": true, "format": "int32", "readOnly": true},
                "m": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "default": 2},
                "s": {"type": "string", "maxLength": 3}
            }
        });
        let (v, diags) = compile_op(&root, "/inline", "post");
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        assert_eq!(diags.warnings.len(), 1, "{:?}", diags.warnings);
        let v = v.unwrap();
        let cases: &[(&str, Result<(), Invalid>)] = &[
            (r#"{"n":9.5,"m":2,"s":"abc"}"#, Ok(())),
            (
                r#"{"n":10}"#,
                body_err("[numeric instance is not strictly lower than the required maximum 10]"),
            ),
            (
                r#"{"m":1}"#,
                body_err("[numeric instance is not strictly greater than the required minimum 1]"),
            ),
            (
                r#"{"s":"abcd"}"#,
                body_err(r#"[string "abcd" is too long (length: 4, maximum allowed: 3)]"#),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&check(&v, &full(body)), want, "{body}");
        }
    }

    #[test]
    fn unusable_body_schema_keeps_parameter_checks() {
        let mut root = doc();
        root["definitions"]["Pet"]["$ref"] = json!("#/definitions/Nobody");
        let (v, diags) = compile_op(&root, "/pets/{id}", "post");
        assert!(diags.errors.is_empty());
        let v = v.unwrap();
        assert!(!v.validates_body());
        assert_eq!(check(&v, &full("garbage")), Ok(()));
    }

    #[test]
    fn api_level_problems_are_reported_once() {
        let mut root = doc();
        root[VALIDATOR_KEY] = json!("nope");
        let mut diags = Diagnostics::default();
        for method in ["post", "delete"] {
            let item = root["paths"]["/pets/{id}"].as_object().unwrap();
            let jp = format!("$.paths./pets/{{id}}.{method}");
            compile(
                &root,
                item,
                item[method].as_object().unwrap(),
                Path::new("a"),
                &jp,
                &mut diags,
            );
            let item = root["paths"]["/animals"].as_object().unwrap();
            compile(
                &root,
                item,
                item["post"].as_object().unwrap(),
                Path::new("a"),
                "$.paths./animals.post",
                &mut diags,
            );
        }
        assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
    }

    #[test]
    fn long_values_are_cut() {
        let root = doc();
        let (v, _) = compile_op(&root, "/inline", "post");
        let long = format!(r#"{{"n":"{}"}}"#, "x".repeat(500));
        let Err(Invalid::Body { detail, .. }) = check(&v.unwrap(), &full(&long)) else {
            panic!("expected a body error");
        };
        assert!(detail.len() < 400, "{detail}");
        assert!(detail.contains("xxx..."), "{detail}");
    }

    #[test]
    fn invalid_accessors() {
        let p = Invalid::Parameters {
            message: "Missing required request parameters: [a]".to_owned(),
        };
        assert_eq!(p.response_type(), ResponseType::BadRequestParameters);
        assert_eq!(p.message(), "Missing required request parameters: [a]");
        let b = Invalid::Body {
            message: "Invalid request body".to_owned(),
            detail: "[x]".to_owned(),
        };
        assert_eq!(b.response_type(), ResponseType::BadRequestBody);
        assert_eq!(b.message(), "Invalid request body");
        assert_eq!(b.validation_error_string(), "[x]");
    }

    #[test]
    fn validator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MethodValidator>();
    }
}
