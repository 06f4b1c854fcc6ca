//! API resource policies (`x-amazon-apigateway-policy`), sans-IO: the
//! policy document compiled once, and its verdict for a request.
//!
//! A statement applies to a request when its principal, action, resource
//! and every condition match. Evaluation is IAM's for one action: a
//! matching `Deny` wins, then a matching `Allow`, else an implicit deny.
//!
//! What the gateway can know about a request: its method ARN (matched
//! after the API id; the region, account and API id of a resource ARN are
//! the policy's own API, whatever they say), the client's address
//! (`aws:SourceIp`), its `User-Agent` and `Referer` (`aws:UserAgent`,
//! `aws:Referer`), and for `AWS_IAM` methods the signer
//! (`arn:aws:iam::000000000000:user/NAME`). A request never comes through a
//! VPC endpoint (`aws:SourceVpc`, `aws:SourceVpce` are absent). A statement
//! with anything else — another condition key or operator, `NotPrincipal`,
//! `NotAction`, `NotResource` — is opaque: it never allows, and as a
//! `Deny` it denies whenever what it names that can be read matches.
//! Unsure is no. Read first: [`ResourcePolicy::parse`],
//! [`ResourcePolicy::evaluate`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::authorizer::{wildcard_match, Verdict};

/// A compiled resource policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    principal: Principal,
    /// `Action` patterns (case-insensitive).
    actions: Vec<String>,
    resources: Vec<ResourcePattern>,
    conditions: Vec<Condition>,
    /// Something this evaluator cannot read (see the module doc).
    opaque: bool,
}

/// A `Resource`, matched as IAM does (`*` and `?` span `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ResourcePattern {
    /// Over `STAGE/METHOD/PATH`: the shorthand `execute-api:/...`, or an
    /// ARN whose API id is a plain name (taken as this API's, so a policy
    /// exported from another deployment works).
    Method(String),
    /// Over `API_ID/STAGE/METHOD/PATH`: an ARN whose API id part has a
    /// wildcard, which may span into the rest.
    WithApi(String),
}

impl ResourcePattern {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        match self {
            ResourcePattern::Method(p) => wildcard_match(p, facts.resource),
            ResourcePattern::WithApi(p) => {
                wildcard_match(p, &format!("{}/{}", facts.api_id, facts.resource))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    /// `"*"` or `{"AWS": "*"}`: anyone, anonymous callers included.
    Anyone,
    /// IAM principals (user ARNs, account ids, account roots), with
    /// wildcards: signed callers only.
    Aws(Vec<String>),
    /// Another kind (`Service`, `Federated`), never a caller here.
    Nobody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    SourceIp,
    /// Always absent here.
    SourceVpc,
    UserAgent,
    Referer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Ip(Vec<IpNet>),
    Equals(Vec<String>),
    EqualsIgnoreCase(Vec<String>),
    Like(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    key: Key,
    op: Op,
    /// `NotIpAddress`, `StringNotEquals`, ...: true when no value matches
    /// (and when the key is absent).
    negated: bool,
    /// `...IfExists`: true when the key is absent.
    if_exists: bool,
}

/// What a policy may ask of a request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub api_id: &'a str,
    /// `STAGE/METHOD/PATH` (the method ARN after `API_ID/`).
    pub resource: &'a str,
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// The signer's ARN (`AWS_IAM` methods), `None` for anonymous callers.
    pub principal: Option<&'a str>,
}

/// A JSON path below the policy and what is wrong or unread there.
pub type Note = (String, String);

/// The account every credential of this gateway belongs to.
const ACCOUNT: &str = "000000000000";

impl ResourcePolicy {
    /// Compiles a policy document (an object, or its JSON text as the
    /// admin API's `policy` carries it). `Err` is (JSON path below the
    /// policy, problem). The warnings name what makes a statement opaque.
    pub fn parse(doc: &Value) -> Result<(ResourcePolicy, Vec<Note>), Note> {
        let parsed;
        let doc = match doc {
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|e| (String::new(), format!("not a JSON policy document: {e}")))?;
                &parsed
            }
            other => other,
        };
        let Some(obj) = doc.as_object() else {
            return Err((String::new(), "a policy document is a JSON object".into()));
        };
        // IAM refuses what it does not know: read any other way, a
        // misspelled element (`Condtion`) would leave an allow open.
        for key in obj.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err((
                    format!(".{key}"),
                    "not an element of a policy (Version, Id, Statement)".into(),
                ));
            }
        }
        match obj.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => {
                return Err((
                    ".Version".into(),
                    format!("{v} is not a policy language version (2012-10-17)"),
                ))
            }
        }
        let statements = match obj.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => {
                return Err((
                    ".Statement".into(),
                    "a policy needs a Statement (an object or a list of them)".into(),
                ))
            }
        };
        let mut warnings = Vec::new();
        let mut out = Vec::with_capacity(statements.len());
        for (i, s) in statements.into_iter().enumerate() {
            let jp = format!(".Statement[{i}]");
            out.push(statement(s, &jp, &mut warnings)?);
        }
        Ok((ResourcePolicy { statements: out }, warnings))
    }

    /// The policy's verdict on a request.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Verdict {
        let mut allowed = false;
        for s in &self.statements {
            if !s.applies(facts) {
                continue;
            }
            if !s.allow {
                return Verdict::ExplicitDeny;
            }
            if !s.opaque {
                allowed = true;
            }
        }
        if allowed {
            Verdict::Allow
        } else {
            Verdict::ImplicitDeny
        }
    }
}

impl Statement {
    fn applies(&self, facts: &Facts<'_>) -> bool {
        let principal = match &self.principal {
            Principal::Anyone => true,
            Principal::Nobody => false,
            Principal::Aws(patterns) => facts.principal.is_some_and(|p| {
                patterns.iter().any(|pat| {
                    wildcard_match(pat, p)
                        || pat == ACCOUNT
                        || pat == &format!("arn:aws:iam::{ACCOUNT}:root")
                })
            }),
        };
        principal
            && (self.actions.is_empty()
                || self
                    .actions
                    .iter()
                    .any(|a| wildcard_match(&a.to_ascii_lowercase(), "execute-api:invoke")))
            && (self.resources.is_empty() || self.resources.iter().any(|r| r.matches(facts)))
            && self.conditions.iter().all(|c| c.holds(facts))
    }
}

impl Condition {
    fn holds(&self, facts: &Facts<'_>) -> bool {
        let ip;
        let value: Option<&str> = match self.key {
            Key::SourceIp => {
                ip = facts.source_ip.to_canonical().to_string();
                Some(&ip)
            }
            Key::SourceVpc => None,
            Key::UserAgent => facts.user_agent,
            Key::Referer => facts.referer,
        };
        let Some(value) = value else {
            return self.if_exists || self.negated;
        };
        let matched = match &self.op {
            Op::Ip(nets) => {
                let addr = facts.source_ip.to_canonical();
                self.key == Key::SourceIp && nets.iter().any(|n| n.contains(&addr))
            }
            Op::Equals(vs) => vs.iter().any(|v| v == value),
            Op::EqualsIgnoreCase(vs) => vs.iter().any(|v| v.eq_ignore_ascii_case(value)),
            Op::Like(vs) => vs.iter().any(|v| wildcard_match(v, value)),
        };
        matched != self.negated
    }
}

/// A string or a list of strings (`Action`, `Resource`, condition values).
fn strings(v: &Value, jp: &str) -> Result<Vec<String>, Note> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| (format!("{jp}[{i}]"), "must be a string".into()))
            })
            .collect(),
        _ => Err((
            jp.to_owned(),
            "must be a string or a list of strings".into(),
        )),
    }
}

/// A `Resource`: the shorthand `execute-api:/STAGE/METHOD/PATH`, `*`, or
/// an execute-api ARN (any partition, region and account).
fn resource_pattern(r: &str) -> Option<ResourcePattern> {
    if r == "*" {
        return Some(ResourcePattern::Method("*".into()));
    }
    if let Some(rest) = r.strip_prefix("execute-api:/") {
        return Some(ResourcePattern::Method(rest.to_owned()));
    }
    let mut parts = r.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some(service), Some(_region), Some(_account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !wildcard_match(service, "execute-api") {
        return None;
    }
    let wild = |s: &str| s.contains(['*', '?']);
    match rest.split_once('/') {
        Some((api, path)) if !wild(api) => Some(ResourcePattern::Method(path.to_owned())),
        // The API id alone names the API, no method: nothing a request is.
        None if !wild(rest) => Some(ResourcePattern::Method(String::new())),
        _ => Some(ResourcePattern::WithApi(rest.to_owned())),
    }
}

fn statement(s: &Value, jp: &str, warnings: &mut Vec<Note>) -> Result<Statement, Note> {
    let Some(o) = s.as_object() else {
        return Err((jp.to_owned(), "a statement is a JSON object".into()));
    };
    for key in o.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err((
                format!("{jp}.{key}"),
                "not an element of a statement (Sid, Effect, Principal, Action, Resource, Condition and their Not forms)".into(),
            ));
        }
    }
    let allow = match o.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => {
            return Err((
                format!("{jp}.Effect"),
                "must be \"Allow\" or \"Deny\"".into(),
            ))
        }
    };
    let mut opaque = false;
    let mut opaque_because = |what: &str, warnings: &mut Vec<Note>| {
        opaque = true;
        warnings.push((
            format!("{jp}.{what}"),
            format!(
                "not evaluated by this gateway: the statement {}",
                if allow {
                    "never allows"
                } else {
                    "denies whenever the rest of it matches"
                }
            ),
        ));
    };
    let principal = match (o.get("Principal"), o.get("NotPrincipal")) {
        (_, Some(_)) => {
            opaque_because("NotPrincipal", warnings);
            Principal::Anyone
        }
        (Some(Value::String(s)), None) if s == "*" => Principal::Anyone,
        (Some(Value::Object(p)), None) => {
            if let Some(k) = p.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "AWS" | "Service" | "Federated" | "CanonicalUser"
                )
            }) {
                return Err((
                    format!("{jp}.Principal.{k}"),
                    "not a kind of principal (AWS, Service, Federated, CanonicalUser)".into(),
                ));
            }
            match p.get("AWS") {
                Some(aws) => {
                    let list = strings(aws, &format!("{jp}.Principal.AWS"))?;
                    for (i, a) in list.iter().enumerate() {
                        let account = a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
                        if !(a == "*" || account || a.starts_with("arn:")) {
                            return Err((
                                format!("{jp}.Principal.AWS[{i}]"),
                                format!("`{a}` is not an AWS principal (an ARN, a 12-digit account id, or *)"),
                            ));
                        }
                    }
                    if list.iter().any(|a| a == "*") {
                        Principal::Anyone
                    } else {
                        Principal::Aws(list)
                    }
                }
                None => Principal::Nobody,
            }
        }
        (None, None) => {
            return Err((
                format!("{jp}.Principal"),
                "a resource policy statement needs a Principal".into(),
            ))
        }
        _ => {
            return Err((
                format!("{jp}.Principal"),
                "must be \"*\" or an object such as {\"AWS\": ...}".into(),
            ))
        }
    };
    let actions = match (o.get("Action"), o.get("NotAction")) {
        (Some(a), None) => strings(a, &format!("{jp}.Action"))?,
        (_, Some(_)) => {
            opaque_because("NotAction", warnings);
            Vec::new()
        }
        (None, None) => return Err((format!("{jp}.Action"), "a statement needs an Action".into())),
    };
    let resources = match (o.get("Resource"), o.get("NotResource")) {
        (Some(r), None) => {
            let list = strings(r, &format!("{jp}.Resource"))?;
            let mut out = Vec::with_capacity(list.len());
            for (i, r) in list.iter().enumerate() {
                if r.trim() != r {
                    return Err((
                        format!("{jp}.Resource[{i}]"),
                        format!("`{r}` has white space around it"),
                    ));
                }
                // A policy variable (`${aws:username}`) is not substituted
                // here: compared as text it would match what it should not.
                if r.contains("${") {
                    opaque_because(&format!("Resource[{i}]"), warnings);
                }
                match resource_pattern(r) {
                    Some(p) => out.push(p),
                    None => {
                        return Err((
                            format!("{jp}.Resource[{i}]"),
                            format!("`{r}` is not an execute-api resource (arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/PATH or execute-api:/STAGE/METHOD/PATH)"),
                        ))
                    }
                }
            }
            out
        }
        (_, Some(_)) => {
            opaque_because("NotResource", warnings);
            Vec::new()
        }
        (None, None) => {
            return Err((
                format!("{jp}.Resource"),
                "a statement needs a Resource".into(),
            ))
        }
    };
    let mut conditions = Vec::new();
    if let Some(c) = o.get("Condition") {
        let Some(c) = c.as_object() else {
            return Err((format!("{jp}.Condition"), "must be an object".into()));
        };
        for (op_name, block) in c {
            let cp = format!("{jp}.Condition.{op_name}");
            let Some(block) = block.as_object() else {
                return Err((cp, "must be an object of condition keys".into()));
            };
            let (base, if_exists) = match op_name.strip_suffix("IfExists") {
                Some(b) => (b, true),
                None => (op_name.as_str(), false),
            };
            for (key_name, values) in block {
                let kp = format!("{cp}.{key_name}");
                let values = strings(values, &kp)?;
                if values.iter().any(|v| v.contains("${")) {
                    opaque_because(&format!("Condition.{op_name}.{key_name}"), warnings);
                    continue;
                }
                let key = match key_name.to_ascii_lowercase().as_str() {
                    "aws:sourceip" => Some(Key::SourceIp),
                    "aws:sourcevpc" | "aws:sourcevpce" => Some(Key::SourceVpc),
                    "aws:useragent" => Some(Key::UserAgent),
                    "aws:referer" => Some(Key::Referer),
                    _ => None,
                };
                let (op, negated) = match base {
                    "IpAddress" | "NotIpAddress" => {
                        let mut nets = Vec::with_capacity(values.len());
                        for (i, v) in values.iter().enumerate() {
                            let net = v
                                .parse::<IpNet>()
                                .or_else(|_| v.parse::<IpAddr>().map(IpNet::from));
                            match net {
                                Ok(n) => nets.push(n),
                                Err(_) => {
                                    return Err((
                                        format!("{kp}[{i}]"),
                                        format!("`{v}` is not an IP address or CIDR block"),
                                    ))
                                }
                            }
                        }
                        (Some(Op::Ip(nets)), base == "NotIpAddress")
                    }
                    "StringEquals" => (Some(Op::Equals(values)), false),
                    "StringNotEquals" => (Some(Op::Equals(values)), true),
                    "StringEqualsIgnoreCase" => (Some(Op::EqualsIgnoreCase(values)), false),
                    "StringNotEqualsIgnoreCase" => (Some(Op::EqualsIgnoreCase(values)), true),
                    "StringLike" => (Some(Op::Like(values)), false),
                    "StringNotLike" => (Some(Op::Like(values)), true),
                    _ => (None, false),
                };
                // IP operators read aws:SourceIp, string operators the
                // other keys; anything else is not evaluated.
                let op = match (&key, op) {
                    (Some(Key::SourceIp), Some(op @ Op::Ip(_))) => Some(op),
                    (Some(Key::SourceVpc | Key::UserAgent | Key::Referer), Some(op))
                        if !matches!(op, Op::Ip(_)) =>
                    {
                        Some(op)
                    }
                    _ => None,
                };
                match (key, op) {
                    (Some(key), Some(op)) => conditions.push(Condition {
                        key,
                        op,
                        negated,
                        if_exists,
                    }),
                    _ => opaque_because(&format!("Condition.{op_name}.{key_name}"), warnings),
                }
            }
        }
    }
    Ok(Statement {
        allow,
        principal,
        actions,
        resources,
        conditions,
        opaque,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(resource: &'a str, ip: &str, principal: Option<&'a str>) -> Facts<'a> {
        Facts {
            api_id: "rpapi",
            resource,
            source_ip: ip.parse().unwrap(),
            user_agent: Some("curl/8"),
            referer: None,
            principal,
        }
    }

    fn policy(statements: Value) -> ResourcePolicy {
        ResourcePolicy::parse(&json!({"Version": "2012-10-17", "Statement": statements}))
            .unwrap()
            .0
    }

    #[test]
    fn an_ip_allow_list_with_an_explicit_deny() {
        // AWS's documented pattern: allow everyone, deny outside the list.
        let p = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "198.51.100.7"]}}}
        ]));
        let r = "prod/GET/pets";
        assert_eq!(p.evaluate(&facts(r, "192.0.2.9", None)), Verdict::Allow);
        assert_eq!(p.evaluate(&facts(r, "198.51.100.7", None)), Verdict::Allow);
        assert_eq!(
            p.evaluate(&facts(r, "198.51.100.8", None)),
            Verdict::ExplicitDeny
        );
        // IPv4-mapped IPv6 (a listener on [::]) is the IPv4 address.
        assert_eq!(
            p.evaluate(&facts(r, "::ffff:192.0.2.1", None)),
            Verdict::Allow
        );
        assert_eq!(
            p.evaluate(&facts(r, "2001:db8::1", None)),
            Verdict::ExplicitDeny
        );
    }

    #[test]
    fn resources_match_after_the_api_id_whatever_the_arn_names() {
        let p = policy(json!([
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "execute-api:*",
             "Resource": ["arn:aws:execute-api:us-east-1:111111111111:abc123/prod/GET/pets/*",
                          "arn:aws:execute-api:*:*:*/test/*"]}
        ]));
        assert_eq!(
            p.evaluate(&facts("prod/GET/pets/1", "10.0.0.1", None)),
            Verdict::Allow
        );
        assert_eq!(
            p.evaluate(&facts("prod/POST/pets/1", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(&facts("test/DELETE/x", "10.0.0.1", None)),
            Verdict::Allow
        );
        // The API alone names no method.
        let p = policy(
            json!([{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
            "Resource": "arn:aws:execute-api:us-east-1:111111111111:abc123"}]),
        );
        assert_eq!(
            p.evaluate(&facts("prod/GET/pets", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
    }

    #[test]
    fn a_wildcard_in_the_api_id_spans_into_the_path_as_in_iam() {
        for pattern in [
            "arn:aws:execute-api:*:*:*/GET/secret",
            "arn:aws:execute-api:*:*:*secret",
            "arn:aws:execute-api:*:*:rpapi*",
            "arn:aws:execute-api:*:*:rpapi?prod/GET/secret",
        ] {
            let p = policy(
                json!([{"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": pattern}]),
            );
            assert_eq!(
                p.evaluate(&facts("prod/GET/secret", "10.0.0.1", None)),
                Verdict::ExplicitDeny,
                "{pattern}"
            );
        }
        // A wildcard API id is matched against this API's id.
        let p = policy(
            json!([{"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
            "Resource": "arn:aws:execute-api:*:*:other*/prod/*"}]),
        );
        assert_eq!(
            p.evaluate(&facts("prod/GET/secret", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
    }

    #[test]
    fn iam_principals_match_signed_callers_only() {
        let p = policy(json!([
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/ops-*"]},
             "Action": "execute-api:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "000000000000"}, "Action": "execute-api:Invoke",
             "Resource": "execute-api:/*/DELETE/*"}
        ]));
        let ops = "arn:aws:iam::000000000000:user/ops-1";
        let dev = "arn:aws:iam::000000000000:user/dev";
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", Some(ops))),
            Verdict::Allow
        );
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", Some(dev))),
            Verdict::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(&facts("prod/DELETE/x", "10.0.0.1", Some(ops))),
            Verdict::ExplicitDeny
        );
        // Service principals are never a caller here.
        let p = policy(
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "execute-api:Invoke", "Resource": "*"}]),
        );
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", Some(ops))),
            Verdict::ImplicitDeny
        );
    }

    #[test]
    fn what_cannot_be_read_never_allows_and_still_denies() {
        let (p, warnings) = ResourcePolicy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}
        ]}))
        .unwrap();
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0]
            .0
            .contains("Condition.DateLessThan.aws:CurrentTime"));
        let (p, _) = ResourcePolicy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}}}
        ]}))
        .unwrap();
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ExplicitDeny
        );
    }

    #[test]
    fn policy_variables_are_not_evaluated() {
        let (p, warnings) = ResourcePolicy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringLike": {"aws:UserAgent": "${*}"}}},
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/${aws:username}/*"}
        ]}))
        .unwrap();
        let mut f = facts("${aws:username}/GET/x", "10.0.0.1", None);
        f.user_agent = Some("${*}");
        assert_eq!(p.evaluate(&f), Verdict::ImplicitDeny);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn vpc_endpoints_are_absent_and_strings_compare_as_iam() {
        // Private-API policies: only calls through a VPC endpoint, which
        // never reach this gateway; the negated form denies them all.
        let p = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
        ]));
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ImplicitDeny
        );
        let p = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
        ]));
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ExplicitDeny
        );
        let p = policy(json!([
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
             "Condition": {"StringLike": {"aws:UserAgent": "curl/*"}, "StringEqualsIfExists": {"aws:Referer": "https://a.example/"}}},
        ]));
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::Allow
        );
        let mut f = facts("prod/GET/x", "10.0.0.1", None);
        f.referer = Some("https://b.example/");
        assert_eq!(p.evaluate(&f), Verdict::ImplicitDeny);
        f.referer = None;
        f.user_agent = None;
        assert_eq!(p.evaluate(&f), Verdict::ImplicitDeny);
    }

    #[test]
    fn broken_policies_say_where() {
        for (doc, path) in [
            (
                json!({"Statement": [{"Effect": "Permit", "Principal": "*", "Action": "x", "Resource": "*"}]}),
                ".Statement[0].Effect",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "x", "Resource": "*"}]}),
                ".Statement[0].Principal",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "arn:aws:s3:::bucket/*"}]}),
                ".Statement[0].Resource[0]",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/33"]}}}]}),
                ".Statement[0].Condition.IpAddress.aws:SourceIp[0]",
            ),
            (json!({"Version": "2012-10-17"}), ".Statement"),
            (json!("{not json"), ""),
            // What IAM does not know is refused: read another way, a
            // misspelt condition would leave an allow unconditional.
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "x", "Resource": "*",
                "Condtion": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}),
                ".Statement[0].Condtion",
            ),
            (
                json!({"Statement": [], "Versoin": "2012-10-17"}),
                ".Versoin",
            ),
            (
                json!({"Version": "2020-01-01", "Statement": []}),
                ".Version",
            ),
            (
                json!({"Statement": [{"Effect": "Deny", "Principal": {"aws": "*"}, "Action": "x", "Resource": "*"}]}),
                ".Statement[0].Principal.aws",
            ),
            (
                json!({"Statement": [{"Effect": "Deny", "Principal": {"AWS": "alice"}, "Action": "x", "Resource": "*"}]}),
                ".Statement[0].Principal.AWS[0]",
            ),
            (
                json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "x", "Resource": "execute-api:/* "}]}),
                ".Statement[0].Resource[0]",
            ),
        ] {
            let err = ResourcePolicy::parse(&doc).unwrap_err();
            assert_eq!(err.0, path, "{doc}: {err:?}");
        }
        // The admin API's form: the document as JSON text.
        let text = json!({"Statement": {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}}).to_string();
        let (p, _) = ResourcePolicy::parse(&Value::String(text)).unwrap();
        assert_eq!(
            p.evaluate(&facts("prod/GET/x", "10.0.0.1", None)),
            Verdict::ExplicitDeny
        );
    }
}
