//! Loading and compiling configuration: `tollgate.toml` plus the Swagger
//! files it names → one immutable [`Snapshot`].
//!
//! Owns: reading files, reporting every problem at once with the file, the
//! JSON path and what is wrong ([`Diagnostic`]), and deciding what is an
//! error (nothing is served) or a warning (served, and `check` says so).
//! Must not: touch the running gateway. A failed load leaves the serving
//! snapshot alone; publishing a new one is the caller's business.
//! Read first: [`load`].

mod compile;
pub mod raw;
pub mod security;
pub mod swagger;
pub mod ws;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::snapshot::Snapshot;

pub use compile::{
    build, check_stage_variable, compile, read_config, valid_stage_name, AdminSettings, ApiSource,
    CacheSettings, ClusterSettings, KeySettings, LimitSettings, Loaded, MethodCacheSettings,
    PlanSettings, Settings, StageSource,
};

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// `$.paths./pets/{id}.get.x-amazon-apigateway-integration.uri`, or a
    /// TOML key path like `$.server.listen`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line per diagnostic: a path or message that carries a line
        // break or other control character (a Swagger path with a newline)
        // shows it escaped.
        let line = |s: &str| -> String {
            s.chars()
                .flat_map(|c| {
                    if c.is_control() {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect()
        };
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            line(&self.path),
            line(&self.message)
        )
    }
}

/// Collects errors and warnings while compiling.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, file: &Path, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            file: file.to_path_buf(),
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, file: &Path, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            file: file.to_path_buf(),
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Why a configuration could not be loaded: every error found.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_errors(.errors))]
pub struct LoadError {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

fn render_errors(errors: &[Diagnostic]) -> String {
    let mut s = format!(
        "configuration has {} error{}:",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// Reads `tollgate.toml` and every Swagger file it names, and compiles them.
pub fn load(config_path: &Path) -> Result<Snapshot, LoadError> {
    load_with_sources(config_path, &crate::limit::registry::Registry::new(0)).map(|(_, s)| s)
}

/// Like [`load`], also returning what was read, for later rebuilds.
pub fn load_with_sources(
    config_path: &Path,
    registry: &crate::limit::registry::Registry,
) -> Result<(Loaded, Snapshot), LoadError> {
    let mut diags = Diagnostics::default();
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => t,
        Err(e) => {
            diags.error(config_path, "$", format!("cannot read file: {e}"));
            return Err(LoadError {
                errors: diags.errors,
                warnings: diags.warnings,
            });
        }
    };
    let raw = match parse_toml(config_path, &text) {
        Ok(raw) => raw,
        Err(d) => {
            return Err(LoadError {
                errors: vec![d],
                warnings: Vec::new(),
            })
        }
    };
    match read_config(config_path, raw, &mut diags, &FsReader) {
        Some(loaded) => {
            if loaded.settings.limits.cluster.is_some() {
                registry.set_cluster();
            }
            let snapshot = build(&loaded.settings, &loaded.apis, registry, &mut diags)?;
            Ok((loaded, snapshot))
        }
        None => Err(LoadError {
            errors: diags.errors,
            warnings: diags.warnings,
        }),
    }
}

/// Parses TOML into the raw structs; a syntax error carries its line and
/// column, a shape error (unknown key, wrong type) its key path.
pub fn parse_toml(file: &Path, text: &str) -> Result<raw::RawConfig, Diagnostic> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let location = e
            .span()
            .map(|s| line_col(text, s.start))
            .map(|(l, c)| format!("line {l}, column {c}"))
            .unwrap_or_else(|| "$".to_owned());
        Diagnostic {
            file: file.to_path_buf(),
            path: location,
            message: e.message().to_owned(),
        }
    })?;
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Diagnostic {
            file: file.to_path_buf(),
            path: if path == "." || path.is_empty() {
                "$".to_owned()
            } else {
                format!("$.{path}")
            },
            message: e.into_inner().message().to_owned(),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, col)
}

/// Where Swagger documents come from; tests and the admin API supply their
/// own.
pub trait SourceReader {
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

pub struct FsReader;

impl SourceReader for FsReader {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Parses a Swagger document as JSON or YAML (by extension, then by its
/// first character).
pub fn parse_document(file: &Path, text: &str) -> Result<serde_json::Value, Diagnostic> {
    // A UTF-8 byte-order mark (editors on Windows write one) is not part
    // of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let looks_json = match ext.as_deref() {
        Some("json") => true,
        Some("yaml") | Some("yml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    if looks_json {
        serde_json::from_str(text).map_err(|e| Diagnostic {
            file: file.to_path_buf(),
            path: format!("line {}, column {}", e.line(), e.column()),
            message: format!("invalid JSON: {e}"),
        })
    } else {
        serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| Diagnostic {
            file: file.to_path_buf(),
            path: "$".to_owned(),
            message: format!("invalid YAML: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_the_key() {
        let file = Path::new("t.toml");
        let e = parse_toml(file, "[server]\nlisten = \"x\"\nlistne = 1\n").unwrap_err();
        assert_eq!(e.path, "$.server.listne");
        assert!(
            e.message.contains("unknown field `listne`"),
            "{}",
            e.message
        );
        let e = parse_toml(file, "[server]\nlisten = 5\n").unwrap_err();
        assert_eq!(e.path, "$.server.listen");
        let e = parse_toml(file, "[server\nlisten = 5\n").unwrap_err();
        assert!(e.path.starts_with("line 1"), "{}", e.path);
        let e = parse_toml(
            file,
            "[server]\nlisten = \"a\"\n[[apis]]\nid = \"x\"\nswagger = 1\n",
        )
        .unwrap_err();
        assert_eq!(e.path, "$.apis[0].swagger");
    }

    #[test]
    fn documents_parse_as_json_or_yaml() {
        let v = parse_document(Path::new("a.yaml"), "swagger: '2.0'\npaths: {}\n").unwrap();
        assert_eq!(v["swagger"], "2.0");
        let v = parse_document(Path::new("a"), "{\"swagger\": \"2.0\"}").unwrap();
        assert_eq!(v["swagger"], "2.0");
        let e = parse_document(Path::new("a.json"), "{\"swagger\": ").unwrap_err();
        assert!(e.message.starts_with("invalid JSON"));
        // A byte-order mark is skipped, in JSON and YAML.
        let doc = parse_document(Path::new("a.json"), "\u{feff}{\"swagger\": \"2.0\"}").unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let doc = parse_document(Path::new("a.yaml"), "\u{feff}swagger: '2.0'\n").unwrap();
        assert_eq!(doc["swagger"], "2.0");
    }
}
