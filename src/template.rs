//! Substitution templates: `$context.*`, `$stageVariables.*` and friends in
//! otherwise literal text, compiled once into [`Piece`]s.
//!
//! Owns: the template form API Gateway uses for gateway responses ("not
//! VTL: simple variable substitution only"), also used for the bodies of
//! MOCK integration responses. Values known per stage (stage name, API id,
//! stage variables) are baked in by [`bake`] when a snapshot is compiled;
//! only per-request values are looked up when a response is written.
//! Read first: [`parse`], then [`render`].

use std::borrow::Cow;
use std::collections::BTreeMap;

/// `$context.X` variables the gateway knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextVar {
    RequestId,
    ExtendedRequestId,
    Stage,
    ApiId,
    AccountId,
    HttpMethod,
    ResourcePath,
    ResourceId,
    Path,
    Protocol,
    SourceIp,
    UserAgent,
    RequestTime,
    RequestTimeEpoch,
    DomainName,
    DomainPrefix,
    ErrorMessage,
    ErrorMessageString,
    ErrorResponseType,
    ErrorValidationErrorString,
    /// `identity.apiKey` / `identity.apiKeyId`: the key of a method that
    /// requires one, and its id (empty otherwise).
    ApiKey,
    ApiKeyId,
    /// `identity.clientCert.<field>` (mutual TLS).
    ClientCert(&'static str),
    /// `identity.accessKey`, `identity.caller`, `identity.user`,
    /// `identity.userArn`: the credential that signed an `AWS_IAM` request
    /// (empty otherwise).
    Caller(CallerField),
    /// `authorizer.principalId` or `authorizer.<key>` of a Lambda
    /// authorizer's context, `authorizer.claims.<name>` of a Cognito
    /// token's claims (empty when the method has none).
    Authorizer(String),
    /// A variable API Gateway has but this gateway does not fill (Cognito
    /// claims and identity, ...): renders empty.
    Unsupported(String),
}

/// What `$context.identity.*` says of an IAM caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerField {
    AccessKey,
    Caller,
    User,
    UserArn,
}

impl CallerField {
    pub const ALL: [(CallerField, &'static str); 4] = [
        (CallerField::AccessKey, "identity.accessKey"),
        (CallerField::Caller, "identity.caller"),
        (CallerField::User, "identity.user"),
        (CallerField::UserArn, "identity.userArn"),
    ];

    /// The value for a credential: its access key id, its name (as the
    /// principal), `arn:aws:iam::000000000000:user/NAME`.
    pub fn of(self, name: &str, access_key: Option<&str>) -> String {
        match self {
            CallerField::AccessKey => access_key.unwrap_or("").to_owned(),
            CallerField::Caller | CallerField::User => name.to_owned(),
            CallerField::UserArn => format!("arn:aws:iam::000000000000:user/{name}"),
        }
    }
}

impl ContextVar {
    pub fn parse(name: &str) -> ContextVar {
        match name {
            "requestId" => ContextVar::RequestId,
            "extendedRequestId" => ContextVar::ExtendedRequestId,
            "stage" => ContextVar::Stage,
            "apiId" => ContextVar::ApiId,
            "accountId" => ContextVar::AccountId,
            "httpMethod" => ContextVar::HttpMethod,
            "resourcePath" => ContextVar::ResourcePath,
            "resourceId" => ContextVar::ResourceId,
            "path" => ContextVar::Path,
            "protocol" => ContextVar::Protocol,
            "identity.sourceIp" => ContextVar::SourceIp,
            "identity.userAgent" => ContextVar::UserAgent,
            "identity.accessKey" => ContextVar::Caller(CallerField::AccessKey),
            "identity.caller" => ContextVar::Caller(CallerField::Caller),
            "identity.user" => ContextVar::Caller(CallerField::User),
            "identity.userArn" => ContextVar::Caller(CallerField::UserArn),
            "identity.apiKey" => ContextVar::ApiKey,
            "identity.apiKeyId" => ContextVar::ApiKeyId,
            "requestTime" => ContextVar::RequestTime,
            "requestTimeEpoch" => ContextVar::RequestTimeEpoch,
            "domainName" => ContextVar::DomainName,
            "domainPrefix" => ContextVar::DomainPrefix,
            "error.message" => ContextVar::ErrorMessage,
            "error.messageString" => ContextVar::ErrorMessageString,
            "error.responseType" => ContextVar::ErrorResponseType,
            "error.validationErrorString" => ContextVar::ErrorValidationErrorString,
            other
                if other.starts_with("authorizer.")
                    && other != "authorizer.claims"
                    && other.len() > "authorizer.".len() =>
            {
                ContextVar::Authorizer(other["authorizer.".len()..].to_owned())
            }
            other => match other
                .strip_prefix("identity.clientCert.")
                .and_then(|f| crate::tls::ClientCert::FIELDS.iter().find(|&&k| k == f))
            {
                Some(f) => ContextVar::ClientCert(f),
                None => ContextVar::Unsupported(other.to_owned()),
            },
        }
    }

    /// Known variables are those with a value here; the rest render empty.
    pub fn is_supported(&self) -> bool {
        !matches!(self, ContextVar::Unsupported(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    Context(ContextVar),
    StageVar(String),
    /// `$input.body`: the request body.
    InputBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

/// Where a template finds its values.
pub trait Values {
    fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>>;
    fn stage_var(&self, name: &str) -> Option<Cow<'_, str>>;
    fn input_body(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// Parses a template. Never fails: text that is not a reference we know is
/// kept as it is, like Velocity keeps an unknown `$reference`.
pub fn parse(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if let Some((var, len)) = parse_reference(&text[i..]) {
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Var(var));
                i += len;
                continue;
            }
        }
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        lit.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    if !lit.is_empty() {
        pieces.push(Piece::Text(lit));
    }
    pieces
}

/// `$x.y`, `$!x.y`, `${x.y}`, `$!{x.y}`, `$stageVariables['x']`.
fn parse_reference(s: &str) -> Option<(Var, usize)> {
    let mut i = 1;
    let b = s.as_bytes();
    if b.get(i) == Some(&b'!') {
        i += 1;
    }
    let braced = b.get(i) == Some(&b'{');
    if braced {
        i += 1;
    }
    let start = i;
    // identifier(.identifier)*
    loop {
        let id_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i == id_start {
            if id_start == start {
                return None;
            }
            // a trailing '.' is text, not part of the reference
            i -= 1;
            break;
        }
        if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            i += 1;
            continue;
        }
        break;
    }
    let name = &s[start..i];
    let mut key: Option<String> = None;
    // $stageVariables['name'] / ["name"]
    if name == "stageVariables" && (b.get(i) == Some(&b'[')) {
        let q = *b.get(i + 1)?;
        if q == b'\'' || q == b'"' {
            let rest = &s[i + 2..];
            let end = rest.find(q as char)?;
            if rest.as_bytes().get(end + 1) != Some(&b']') {
                return None;
            }
            key = Some(rest[..end].to_owned());
            i = i + 2 + end + 2;
        }
    }
    if braced {
        if b.get(i) != Some(&b'}') {
            return None;
        }
        i += 1;
    }
    let var = if let Some(k) = key {
        Var::StageVar(k)
    } else if let Some(rest) = name.strip_prefix("context.") {
        Var::Context(ContextVar::parse(rest))
    } else if name == "input.body" {
        Var::InputBody
    } else if let Some(rest) = name.strip_prefix("stageVariables.") {
        if rest.contains('.') {
            return None;
        }
        Var::StageVar(rest.to_owned())
    } else {
        return None;
    };
    Some((var, i))
}

/// Replaces the variables `values` can answer now by text.
pub fn bake(pieces: &[Piece], values: &dyn Values) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        let resolved = match p {
            Piece::Text(t) => Some(Cow::Borrowed(t.as_str())),
            Piece::Var(Var::Context(c)) => values.context(c),
            Piece::Var(Var::StageVar(name)) => values.stage_var(name),
            Piece::Var(Var::InputBody) => values.input_body(),
        };
        match resolved {
            Some(text) => match out.last_mut() {
                Some(Piece::Text(prev)) => prev.push_str(&text),
                _ => out.push(Piece::Text(text.into_owned())),
            },
            None => out.push(p.clone()),
        }
    }
    out
}

/// Writes the template; variables without a value render empty.
pub fn render(pieces: &[Piece], values: &dyn Values, out: &mut Vec<u8>) {
    for p in pieces {
        match p {
            Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
            Piece::Var(Var::Context(c)) => {
                if let Some(v) = values.context(c) {
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Piece::Var(Var::StageVar(name)) => {
                if let Some(v) = values.stage_var(name) {
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Piece::Var(Var::InputBody) => {
                if let Some(v) = values.input_body() {
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
    }
}

pub fn is_static(pieces: &[Piece]) -> bool {
    pieces.iter().all(|p| matches!(p, Piece::Text(_)))
}

/// Values known when a stage is compiled: its name, its API and its
/// variables. Everything per request stays a variable.
pub struct StageValues<'a> {
    pub stage: &'a str,
    pub api_id: &'a str,
    pub variables: &'a BTreeMap<String, String>,
}

impl Values for StageValues<'_> {
    fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>> {
        match var {
            ContextVar::Stage => Some(Cow::Borrowed(self.stage)),
            ContextVar::ApiId => Some(Cow::Borrowed(self.api_id)),
            ContextVar::Unsupported(_) => Some(Cow::Borrowed("")),
            _ => None,
        }
    }
    fn stage_var(&self, name: &str) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(
            self.variables.get(name).map(String::as_str).unwrap_or(""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V;
    impl Values for V {
        fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>> {
            match var {
                ContextVar::RequestId => Some("rid".into()),
                ContextVar::ErrorMessageString => Some("\"Boom\"".into()),
                _ => None,
            }
        }
        fn stage_var(&self, name: &str) -> Option<Cow<'_, str>> {
            (name == "v").then(|| "sv".into())
        }
    }

    fn check(template: &str, want: &str) {
        let mut out = Vec::new();
        render(&parse(template), &V, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), want, "{template}");
    }

    #[test]
    fn render_table() {
        check("plain", "plain");
        check(
            "{\"message\":$context.error.messageString}",
            "{\"message\":\"Boom\"}",
        );
        check("id=$context.requestId.", "id=rid.");
        check("id=${context.requestId}x", "id=ridx");
        check("id=$!context.requestId", "id=rid");
        check("v=$stageVariables.v;", "v=sv;");
        check("v=$stageVariables['v']", "v=sv");
        check("v=${stageVariables.v}", "v=sv");
        check("missing=$stageVariables.nope|", "missing=|");
        check(
            "$ 5 and $input.json('$') and $",
            "$ 5 and $input.json('$') and $",
        );
        check("[$input.body]", "[]");
        check("€$context.requestId€", "€rid€");
        check("${context.requestId", "${context.requestId");
    }

    #[test]
    fn bake_keeps_dynamic_parts() {
        let vars = BTreeMap::from([("v".to_owned(), "x".to_owned())]);
        let sv = StageValues {
            stage: "prod",
            api_id: "api",
            variables: &vars,
        };
        let baked = bake(
            &parse("$context.stage/$stageVariables.v/$context.requestId"),
            &sv,
        );
        assert_eq!(
            baked,
            vec![
                Piece::Text("prod/x/".into()),
                Piece::Var(Var::Context(ContextVar::RequestId))
            ]
        );
    }
}
