//! The route trie does not allocate on a lookup (hit, capture or greedy
//! fallback): checked with a global allocator that aborts on any
//! allocation inside `assert_no_alloc`.

use assert_no_alloc::{assert_no_alloc, AllocDisabler};
use tollgate::router::{parse_path_template, Captures, RouteTrie};

#[global_allocator]
static ALLOCATOR: AllocDisabler = AllocDisabler;

#[test]
fn lookups_do_not_allocate() {
    let mut trie = RouteTrie::new();
    let templates = [
        "/pets",
        "/pets/{petId}",
        "/pets/{petId}/toys/{toyId}",
        "/v1/{proxy+}",
        "/{proxy+}",
    ];
    for (id, t) in templates.iter().enumerate() {
        let segments = parse_path_template(t).unwrap();
        trie.insert(&segments, id as u32).unwrap();
    }
    let mut caps = Captures::default();
    let cases = [
        ("/pets", Some(0)),
        ("/pets/", Some(0)),
        ("/pets/42", Some(1)),
        ("/pets/4%202/toys/ball", Some(2)),
        ("/p%65ts/42", Some(1)),
        ("/v1/a/b/c", Some(3)),
        ("/anything/else", Some(4)),
    ];
    for (path, want) in cases {
        let got = assert_no_alloc(|| trie.lookup(path, &mut caps));
        assert_eq!(got, want, "{path}");
    }
}
