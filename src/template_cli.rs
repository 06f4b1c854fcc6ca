//! `tollgate template`: renders a mapping template on the command line, with
//! the request described by options, so that a template can be tried
//! without deploying anything (AWS's own local tools cannot do this).
//!
//! Owns: the command's arguments ([`TemplateArgs`]), reading the template
//! and the body, the default `$context`, and the output: the rendered body
//! on stdout, the overrides the template set on stderr, errors with the
//! offending line and a caret. Exit status: 0 rendered, 1 the template does
//! not compile or fails to render, 2 a usage error (including a file that
//! cannot be read).
//! Must not: render any other way than the gateway does: compiling and
//! rendering are `crate::vtl`'s, with `Limits::default()`.
//! Read first: [`execute`], the whole command minus the process (what
//! [`run`] wraps), then the argument helpers below it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use crate::vtl::{self, Input, Limits, Overrides};

/// Render a mapping template locally.
#[derive(Debug, Default, clap::Args)]
#[command(after_help = "Examples:
  tollgate template req.vtl --body @pet.json --param id=7 --header 'Accept: application/json'
  tollgate template --inline '{\"id\": \"$input.params(\"id\")\"}' --param id=7
  echo '$context.requestId' | tollgate template - --context requestId=abc

The rendered body goes to stdout as is; overrides the template set go to
stderr (`override status=404`, `override header X=v`, ...). Exit status: 0
rendered, 1 the template failed to compile or render, 2 usage error.")]
pub struct TemplateArgs {
    /// The template file, or `-` to read it from standard input.
    #[arg(
        value_name = "TEMPLATE",
        required_unless_present = "inline",
        conflicts_with = "inline"
    )]
    pub template: Option<PathBuf>,
    /// The template text itself, instead of a file.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub inline: Option<String>,
    /// The request body: literal text, `@FILE` to read a file, or `@-` for
    /// standard input. Empty when absent.
    #[arg(long, value_name = "TEXT|@FILE", allow_hyphen_values = true)]
    pub body: Option<String>,
    /// A path parameter (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_name_value, allow_hyphen_values = true)]
    pub params: Vec<(String, String)>,
    /// A query string parameter (repeatable; a repeated name keeps every
    /// value, and single lookups see the last).
    #[arg(long = "query", value_name = "NAME=VALUE", value_parser = parse_name_value, allow_hyphen_values = true)]
    pub query: Vec<(String, String)>,
    /// A request header (repeatable).
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header, allow_hyphen_values = true)]
    pub headers: Vec<(String, String)>,
    /// A stage variable (repeatable).
    #[arg(long = "stage-variable", value_name = "NAME=VALUE", value_parser = parse_name_value, allow_hyphen_values = true)]
    pub stage_variables: Vec<(String, String)>,
    /// A `$context` value, e.g. `requestId=abc` or `identity.sourceIp=10.0.0.1`
    /// (repeatable; replaces the default).
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_name_value, allow_hyphen_values = true)]
    pub context: Vec<(String, String)>,
}

/// What the command printed and its exit status, for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// What the command takes from its process: injected so that
/// [`execute`] is testable without one.
pub struct Env<'a> {
    pub stdin: &'a mut dyn Read,
    pub now: SystemTime,
    /// The default `$context.requestId`.
    pub request_id: String,
}

/// Exit status of a template that does not compile or render.
pub const EXIT_TEMPLATE: u8 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: u8 = 2;

/// Runs `tollgate template` in this process.
pub fn run(args: &TemplateArgs) -> ExitCode {
    let id = crate::ids::new_request_id();
    let mut stdin = std::io::stdin().lock();
    let outcome = execute(
        args,
        &mut Env {
            stdin: &mut stdin,
            now: SystemTime::now(),
            request_id: String::from_utf8_lossy(&id).into_owned(),
        },
    );
    // A closed pipe (`| head`) is not worth a panic: the status says enough.
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.code)
}

/// The whole command: reads the template and body, renders, and returns
/// what to print.
pub fn execute(args: &TemplateArgs, env: &mut Env<'_>) -> Outcome {
    match render(args, env) {
        Ok(outcome) => outcome,
        Err(Failure { message, code }) => Outcome {
            stdout: String::new(),
            stderr: message,
            code,
        },
    }
}

struct Failure {
    message: String,
    code: u8,
}

fn usage(message: impl std::fmt::Display) -> Failure {
    Failure {
        message: format!("error: {message}\n"),
        code: EXIT_USAGE,
    }
}

fn render(args: &TemplateArgs, env: &mut Env<'_>) -> Result<Outcome, Failure> {
    let stdin_template = args.template.as_deref() == Some(Path::new("-"));
    let stdin_body = args.body.as_deref() == Some("@-");
    if stdin_template && stdin_body {
        return Err(usage(
            "standard input cannot be both the template (`-`) and the body (`@-`)",
        ));
    }
    let (name, source) = match (&args.template, &args.inline) {
        (Some(_), Some(_)) => return Err(usage("give a TEMPLATE file or --inline, not both")),
        (None, None) => return Err(usage("give a TEMPLATE file (or `-`) or --inline TEXT")),
        (None, Some(text)) => ("<inline>".to_owned(), text.clone()),
        (Some(_), None) if stdin_template => {
            let mut text = String::new();
            env.stdin
                .read_to_string(&mut text)
                .map_err(|e| usage(format!("cannot read the template from standard input: {e}")))?;
            ("<stdin>".to_owned(), text)
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            (path.display().to_string(), text)
        }
    };
    let body = match &args.body {
        None => Vec::new(),
        Some(spec) => load_body(spec, env.stdin).map_err(usage)?,
    };
    let template = vtl::compile(&source).map_err(|e| Failure {
        message: located(&name, &source, e.line, e.column, &e.message),
        code: EXIT_TEMPLATE,
    })?;
    let stage_variables: BTreeMap<String, String> = args.stage_variables.iter().cloned().collect();
    let context = context(&args.context, env);
    let input = Input {
        body: &body,
        path: &args.params,
        query: &args.query,
        headers: &args.headers,
        stage_variables: &stage_variables,
        context: &context,
    };
    let rendered = template
        .render(&input, &Limits::default())
        .map_err(|e| Failure {
            message: located(&name, &source, e.line, e.column, &e.message),
            code: EXIT_TEMPLATE,
        })?;
    Ok(Outcome {
        stdout: rendered.body,
        stderr: describe_overrides(&rendered.overrides),
        code: 0,
    })
}

/// The `$context` of the render: defaults that look like a test invoke,
/// replaced key by key by `--context`.
fn context(given: &[(String, String)], env: &Env<'_>) -> BTreeMap<String, String> {
    let mut context: BTreeMap<String, String> = [
        ("requestId", env.request_id.clone()),
        (
            "extendedRequestId",
            crate::ids::extended_id_text(&env.request_id),
        ),
        ("stage", "test".to_owned()),
        ("httpMethod", "POST".to_owned()),
        ("resourcePath", "/".to_owned()),
        ("requestTime", crate::ids::clf_time(env.now)),
        (
            "requestTimeEpoch",
            crate::ids::epoch_millis(env.now).to_string(),
        ),
        ("identity.sourceIp", "127.0.0.1".to_owned()),
        ("apiId", "local".to_owned()),
        ("protocol", "HTTP/1.1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in given {
        context.insert(k.clone(), v.clone());
    }
    // `$context.path` is `/{stage}{resourcePath}` unless given: follow the
    // stage and resource path the user chose.
    if !context.contains_key("path") {
        let stage = context.get("stage").map_or("", String::as_str);
        let resource = context.get("resourcePath").map_or("/", String::as_str);
        let path = format!("/{stage}{resource}");
        context.insert("path".to_owned(), path);
    }
    context
}

/// One line per override, in a fixed order.
fn describe_overrides(o: &Overrides) -> String {
    let mut s = String::new();
    if let Some(status) = o.status {
        let _ = writeln!(s, "override status={status}");
    }
    for (label, list) in [
        ("header", &o.response_headers),
        ("request.header", &o.request_headers),
        ("request.querystring", &o.request_query),
        ("request.path", &o.request_path),
    ] {
        for (k, v) in list {
            let _ = writeln!(s, "override {label} {k}={v}");
        }
    }
    s
}

/// `error: NAME: line L, column C: message`, then the line with a caret
/// under column C (1-based, in characters).
fn located(name: &str, source: &str, line: usize, column: usize, message: &str) -> String {
    let mut s = format!("error: {name}: line {line}, column {column}: {message}\n");
    let text = source
        .split('\n')
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
        .trim_end_matches('\r');
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    // The caret line copies the tabs of the source line so that the caret
    // lands under the column whatever the terminal's tab width.
    let lead: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(s, "{gutter} | {text}");
    let _ = writeln!(s, "{pad} | {lead}^");
    s
}

/// `NAME=VALUE` (the value may contain `=` and be empty).
pub fn parse_name_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("expected NAME=VALUE, the name is empty in `{s}`")),
        Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
        None => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

/// `Name: value`, as curl takes it; the value is trimmed and may be empty.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err(format!("expected 'Name: value', found `{s}`"));
    };
    let name = name.trim();
    // RFC 9110 §5.6.2: a field name is a token.
    if name.is_empty() || !name.bytes().all(crate::http::is_tchar) {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// The body of `--body`: `@FILE` reads the file, `@-` standard input,
/// anything else is the body itself.
pub fn load_body(spec: &str, stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    match spec.strip_prefix('@') {
        None => Ok(spec.as_bytes().to_vec()),
        Some("") => {
            Err("--body @ needs a file name (`@FILE`, or `@-` for standard input)".to_owned())
        }
        Some("-") => {
            let mut body = Vec::new();
            stdin
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
            Ok(body)
        }
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::{Duration, UNIX_EPOCH};

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: TemplateArgs,
    }

    fn parse(argv: &[&str]) -> Result<TemplateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("template").chain(argv.iter().copied())).map(|c| c.args)
    }

    /// A parse result: the pair, or part of the error message.
    type Parsed = Result<(&'static str, &'static str), &'static str>;

    fn owned(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn name_value() {
        let cases: &[(&str, Parsed)] = &[
            ("id=7", Ok(("id", "7"))),
            ("q=", Ok(("q", ""))),
            ("expr=a=b", Ok(("expr", "a=b"))),
            (
                "identity.sourceIp=10.0.0.1",
                Ok(("identity.sourceIp", "10.0.0.1")),
            ),
            ("novalue", Err("expected NAME=VALUE, found `novalue`")),
            ("=v", Err("expected NAME=VALUE, the name is empty in `=v`")),
        ];
        for (input, want) in cases {
            let want = want.map(|(k, v)| owned(k, v)).map_err(str::to_owned);
            assert_eq!(parse_name_value(input), want, "{input}");
        }
    }

    #[test]
    fn header() {
        let cases: &[(&str, Parsed)] = &[
            (
                "Accept: application/json",
                Ok(("Accept", "application/json")),
            ),
            ("X-Empty:", Ok(("X-Empty", ""))),
            ("X-Url:  http://a:8080/  ", Ok(("X-Url", "http://a:8080/"))),
            ("no-colon", Err("expected 'Name: value', found `no-colon`")),
            (": v", Err("`` is not a valid header name")),
            ("Bad Name: v", Err("`Bad Name` is not a valid header name")),
        ];
        for (input, want) in cases {
            let want = want.map(|(k, v)| owned(k, v)).map_err(str::to_owned);
            assert_eq!(parse_header(input), want, "{input}");
        }
    }

    #[test]
    fn body_sources() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(br#"{"from":"file"}"#).unwrap();
        let at_file = format!("@{}", file.path().display());
        let cases: &[(&str, Result<&[u8], &str>)] = &[
            (r#"{"a":1}"#, Ok(br#"{"a":1}"#)),
            ("", Ok(b"")),
            (&at_file, Ok(br#"{"from":"file"}"#)),
            ("@-", Ok(b"from stdin")),
            ("@", Err("--body @ needs a file name")),
            (
                "@/nonexistent/tollgate-body.json",
                Err("cannot read /nonexistent/tollgate-body.json"),
            ),
        ];
        for (spec, want) in cases {
            let got = load_body(spec, &mut &b"from stdin"[..]);
            match want {
                Ok(bytes) => assert_eq!(got.as_deref(), Ok(*bytes), "{spec}"),
                Err(part) => {
                    let e = got.unwrap_err();
                    assert!(e.contains(part), "{spec}: {e}");
                }
            }
        }
    }

    #[test]
    fn argument_parsing() {
        let args = parse(&[
            "t.vtl",
            "--body",
            "-1",
            "--param",
            "id=7",
            "--query",
            "q=1",
            "--query",
            "q=2",
            "--header",
            "Accept: text/plain",
            "--stage-variable",
            "env=prod",
            "--context",
            "requestId=abc",
        ])
        .unwrap();
        assert_eq!(args.template.as_deref(), Some(Path::new("t.vtl")));
        assert_eq!(args.body.as_deref(), Some("-1"));
        assert_eq!(args.params, [owned("id", "7")]);
        assert_eq!(args.query, [owned("q", "1"), owned("q", "2")]);
        assert_eq!(args.headers, [owned("Accept", "text/plain")]);
        assert_eq!(args.stage_variables, [owned("env", "prod")]);
        assert_eq!(args.context, [owned("requestId", "abc")]);

        // Usage errors: clap exits with status 2 for each.
        let bad: &[&[&str]] = &[
            &[],
            &["t.vtl", "--inline", "x"],
            &["t.vtl", "--param", "novalue"],
            &["t.vtl", "--header", "nocolon"],
            &["t.vtl", "--unknown"],
        ];
        for argv in bad {
            let e = parse(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }

    fn exec(args: &TemplateArgs, stdin: &str) -> Outcome {
        let mut stdin = stdin.as_bytes();
        execute(
            args,
            &mut Env {
                stdin: &mut stdin,
                now: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                request_id: "11111111-2222-4333-8444-555555555555".to_owned(),
            },
        )
    }

    fn ok(stdout: &str, stderr: &str) -> Outcome {
        Outcome {
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            code: 0,
        }
    }

    fn failed(stderr: &str, code: u8) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr: stderr.to_owned(),
            code,
        }
    }

    #[test]
    fn execute_table() {
        let cases: &[(&[&str], &str, Outcome)] = &[
            (
                &["--inline", r#"{"id":"$input.params('id')","q":"$input.params('q')"}"#, "--param", "id=7", "--query", "q=1", "--query", "q=2"],
                "",
                ok(r#"{"id":"7","q":"2"}"#, ""),
            ),
            (
                &["--inline", "$input.json('$.pet.name')", "--body", r#"{"pet":{"name":"Rex"}}"#],
                "",
                ok(r#""Rex""#, ""),
            ),
            (
                &["--inline", "$input.params().header.get('Accept')|$input.params('accept')", "--header", "Accept: text/plain"],
                "",
                ok("text/plain|text/plain", ""),
            ),
            (
                &["--inline", "$stageVariables.env"],
                "",
                ok("", ""),
            ),
            (
                &["--inline", "${stageVariables.env}", "--stage-variable", "env=prod"],
                "",
                ok("prod", ""),
            ),
            (
                &["--inline", "$context.requestId $context.stage $context.httpMethod $context.resourcePath $context.path $context.identity.sourceIp $context.apiId $context.requestTimeEpoch $context.requestTime"],
                "",
                ok("11111111-2222-4333-8444-555555555555 test POST / /test/ 127.0.0.1 local 1700000000123 14/Nov/2023:22:13:20 +0000", ""),
            ),
            (
                &["--inline", "$context.requestId $context.stage $context.path $context.identity.sourceIp", "--context", "requestId=r1", "--context", "stage=prod", "--context", "resourcePath=/pets", "--context", "identity.sourceIp=10.0.0.1"],
                "",
                ok("r1 prod /prod/pets 10.0.0.1", ""),
            ),
            (
                // An empty body reads as `{}` (AWS-recorded).
                &["--inline", "[$input.body]"],
                "",
                ok("[{}]", ""),
            ),
            (
                &["-", "--param", "id=3"],
                "id=$input.params('id')",
                ok("id=3", ""),
            ),
            (
                &["--inline", "$input.body", "--body", "@-"],
                "piped",
                ok("piped", ""),
            ),
            (
                &["--inline", "#set($context.responseOverride.status = 404)#set($context.responseOverride.header.X-Why = 'gone')#set($context.requestOverride.querystring.page = '2')#set($context.requestOverride.header.X-In = 'a')#set($context.requestOverride.path.id = '9')done"],
                "",
                ok("done", "override status=404\noverride header X-Why=gone\noverride request.header X-In=a\noverride request.querystring page=2\noverride request.path id=9\n"),
            ),
            (
                &["--inline", "ok\n  #if($x\nmore"],
                "",
                failed("", EXIT_TEMPLATE),
            ),
            (
                &["-", "--body", "@-"],
                "",
                failed("error: standard input cannot be both the template (`-`) and the body (`@-`)\n", EXIT_USAGE),
            ),
            (
                &["/nonexistent/tollgate.vtl"],
                "",
                failed("error: cannot read /nonexistent/tollgate.vtl: No such file or directory (os error 2)\n", EXIT_USAGE),
            ),
            (
                &["--inline", "x", "--body", "@/nonexistent/b.json"],
                "",
                failed("error: cannot read /nonexistent/b.json: No such file or directory (os error 2)\n", EXIT_USAGE),
            ),
        ];
        for (argv, stdin, want) in cases {
            let args = parse(argv).unwrap();
            let got = exec(&args, stdin);
            if want.code == EXIT_TEMPLATE && want.stderr.is_empty() {
                // Compile errors: the exact message is the parser's; check
                // the frame around it.
                assert_eq!(got.code, EXIT_TEMPLATE, "{argv:?}: {got:?}");
                assert!(
                    got.stderr.starts_with("error: <inline>: line "),
                    "{argv:?}: {got:?}"
                );
                assert!(got.stdout.is_empty());
                continue;
            }
            assert_eq!(&got, want, "{argv:?}");
        }
    }

    #[test]
    fn errors_point_at_the_source() {
        // (source, line, column, what is printed under the message)
        let cases: &[(&str, usize, usize, &str)] = &[
            ("abc", 1, 2, "1 | abc\n  |  ^\n"),
            ("one\r\ntwo", 2, 1, "2 | two\n  | ^\n"),
            ("a\n\tb", 2, 2, "2 | \tb\n  | \t^\n"),
            ("é$x", 1, 2, "1 | é$x\n  |  ^\n"),
            ("one\n", 2, 1, "2 | \n  | ^\n"),
        ];
        for (source, line, column, frame) in cases {
            let got = located("t.vtl", source, *line, *column, "bad");
            let want = format!("error: t.vtl: line {line}, column {column}: bad\n{frame}");
            assert_eq!(got, want, "{source:?}");
        }
        let lines = (1..=10)
            .map(|i| format!("line{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            located("t", &lines, 10, 3, "m"),
            "error: t: line 10, column 3: m\n10 | line10\n   |   ^\n"
        );
    }

    #[test]
    fn compile_and_render_errors_are_located() {
        let args = parse(&["--inline", "ok\n#foreach($x in)\n#end"]).unwrap();
        let got = exec(&args, "");
        assert_eq!(got.code, EXIT_TEMPLATE, "{got:?}");
        let mut lines = got.stderr.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with("error: <inline>: line 2, column "),
            "{first}"
        );
        assert_eq!(lines.next(), Some("2 | #foreach($x in)"));
        assert!(lines.next().is_some_and(|l| l.ends_with('^')));

        // A render error: the template reads a body that is not JSON.
        let args = parse(&["--inline", "a\n  $input.json('$.x')", "--body", "not json"]).unwrap();
        let got = exec(&args, "");
        assert_eq!(got.code, EXIT_TEMPLATE, "{got:?}");
        assert!(
            got.stderr.starts_with(
                "error: <inline>: line 2, column 10: Could not parse request body into json"
            ),
            "{got:?}"
        );
        assert!(
            got.stderr
                .ends_with("2 |   $input.json('$.x')\n  |          ^\n"),
            "{got:?}"
        );
    }

    #[test]
    fn template_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"#set($n = $input.path('$.n'))$n").unwrap();
        let path = file.path().display().to_string();
        let args = parse(&[&path, "--body", r#"{"n":5}"#]).unwrap();
        assert_eq!(exec(&args, ""), ok("5", ""));

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        bad.write_all(b"#if(").unwrap();
        let bad_path = bad.path().display().to_string();
        let got = exec(&parse(&[&bad_path]).unwrap(), "");
        assert_eq!(got.code, EXIT_TEMPLATE);
        assert!(
            got.stderr
                .starts_with(&format!("error: {bad_path}: line 1, column ")),
            "{got:?}"
        );
    }

    #[test]
    fn neither_or_both_sources_without_clap() {
        let none = TemplateArgs::default();
        assert_eq!(exec(&none, "").code, EXIT_USAGE);
        let both = TemplateArgs {
            template: Some(PathBuf::from("t.vtl")),
            inline: Some("x".to_owned()),
            ..TemplateArgs::default()
        };
        assert_eq!(exec(&both, "").code, EXIT_USAGE);
    }
}
