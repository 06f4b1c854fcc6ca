//! Swagger loader: any document text (JSON or YAML) is parsed, compiled and
//! bound to a stage without a panic; a refused document says why.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use tollgate::config::{compile, parse_document, parse_toml, Diagnostics, SourceReader};

struct Doc(String);

impl SourceReader for Doc {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Ok(self.0.clone())
    }
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
default_api = "f"
[[apis]]
id = "f"
swagger = "f.json"
[[stages]]
api = "f"
name = "prod"
variables = { host = "127.0.0.1:9", v = "x" }
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first character picks the syntax: YAML documents come from the
    // admin API too.
    let file = if text.starts_with('#') {
        "f.yaml"
    } else {
        "f.json"
    };
    let doc = match parse_document(Path::new(file), text) {
        Ok(doc) => doc,
        Err(d) => {
            assert!(!d.message.is_empty());
            return;
        }
    };
    let mut diags = Diagnostics::default();
    let draft = tollgate::config::swagger::compile_api("f", Path::new(file), &doc, &mut diags);
    if draft.is_none() {
        assert!(!diags.errors.is_empty(), "refused without an error");
    }
    // The whole load: settings, stages bound to the document.
    let config = PathBuf::from("/fuzz/tollgate.toml");
    let Ok(raw) = parse_toml(&config, CONFIG) else {
        return;
    };
    let mut diags = Diagnostics::default();
    if let Err(e) = compile(
        &config,
        raw,
        &mut diags,
        &Doc(serde_json::to_string(&doc).unwrap_or_default()),
    ) {
        assert!(!e.errors.is_empty(), "load failed without an error");
    }
});
