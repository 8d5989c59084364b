//! Tool ids → LLM function names: valid (`^[a-zA-Z0-9_-]{1,64}$`), unique within one map,
//! reversible, stable and deterministic, over a committed list of tricky ids, 20,000 generated
//! ones and (with `LOGLINE_TOOLBENCH_DIR` pointing at the StableToolBench data) every slug of
//! the real catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use logline_core::tool::names::{function_name, is_function_name};
use logline_core::tool::ToolNameMap;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;

/// The pattern, checked without the library's own helper.
fn valid(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks every property of the map of `ids` and returns it.
fn check(ids: &[String]) -> ToolNameMap {
    let distinct: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let map = ToolNameMap::from_ids(ids);
    assert_eq!(map.len(), distinct.len(), "one name per distinct id");

    let mut preferred_count: HashMap<String, usize> = HashMap::new();
    for id in &distinct {
        *preferred_count.entry(function_name(id)).or_default() += 1;
    }
    let mut names = BTreeSet::new();
    for id in &distinct {
        let name = map.function_name(id).expect("every id is named");
        assert!(valid(name), "{id:?} → {name:?}");
        assert!(is_function_name(name));
        assert!(names.insert(name), "{name} named twice");
        assert_eq!(map.tool_id(name), Some(*id), "reversible");
        let preferred = function_name(id);
        assert!(valid(&preferred), "{id:?} → preferred {preferred:?}");
        if preferred_count[&preferred] == 1 {
            assert_eq!(name, preferred, "{id:?}: no collision, its own name");
        }
        if is_function_name(id) {
            assert_eq!(name, *id, "a valid id is never renamed");
        }
    }

    // Deterministic: the order of the ids does not matter.
    let mut reordered = ids.to_vec();
    reordered.reverse();
    reordered.rotate_left(ids.len() / 3);
    assert_eq!(ToolNameMap::from_ids(&reordered), map);

    // Built one id at a time, names are still valid, unique and reversible.
    let mut incremental = ToolNameMap::new();
    for id in ids {
        let name = incremental.insert(id);
        assert!(valid(&name), "{id:?} → {name:?}");
        assert_eq!(incremental.insert(id), name, "an id keeps its name");
        assert_eq!(incremental.tool_id(&name), Some(id.as_str()));
    }
    assert_eq!(incremental.len(), distinct.len());
    map
}

/// Ids that collide once sanitised: the same words joined by different separators.
fn colliding_id() -> impl Strategy<Value = String> {
    let separators = prop::sample::select(vec![
        ".", ":", "::", " ", "/", " / ", "_", "-", "__", "é", "→", "\n", "…",
    ]);
    (
        prop::collection::vec("[a-zA-Z]{1,6}", 1..4),
        prop::collection::vec(separators, 3),
    )
        .prop_map(|(words, seps)| {
            let mut id = String::new();
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    id.push_str(seps[i % seps.len()]);
                }
                id.push_str(w);
            }
            id
        })
}

/// Hub-like ids of every kind: arbitrary unicode, long ones, slugs, MCP names, collisions.
fn tool_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        ".{60,120}",
        "[a-zA-Z0-9_.:-]{55,90}",
        "[A-Z]{2,10}(_[A-Z]{2,10}){1,5}",
        "[a-z]{2,8}\\.[a-z_]{2,20}",
        "mcp://[a-z]{1,8}/[a-zA-Z0-9 ._-]{1,30}",
        "[\u{4e00}-\u{9fff}\u{0400}-\u{04ff}]{1,12}",
        "[ .:/…]{0,4}",
        colliding_id(),
        colliding_id(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// 40 maps of 500 generated ids each: 20,000 ids.
    #[test]
    fn generated_ids_get_valid_unique_reversible_stable_names(
        ids in prop::collection::vec(tool_id(), 500)
    ) {
        check(&ids);
    }
}

/// 20,000 generated ids from a fixed seed.
fn generated(n: usize) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(tool_id(), n);
    strategy.new_tree(&mut runner).unwrap().current()
}

#[test]
fn twenty_thousand_generated_ids_in_one_map() {
    let ids = generated(20_000);
    let map = check(&ids);
    let fallbacks = map
        .iter()
        .filter(|(name, id)| *name != function_name(id))
        .count();
    println!(
        "{} distinct ids, {fallbacks} named by a fallback",
        map.len()
    );
    assert!(map.len() > 15_000, "{} distinct", map.len());
    assert!(fallbacks > 100, "the ids collide: {fallbacks}");
}

/// The committed tricky ids and the names they must keep (names may be stored in histories).
#[test]
fn tricky_ids_keep_their_names() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tool_names.json");
    let pairs: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids: Vec<String> = pairs.iter().map(|(id, _)| id.clone()).collect();
    let map = check(&ids);
    for (id, name) in &pairs {
        assert_eq!(map.function_name(id), Some(name.as_str()), "{id:?}");
    }
}

/// StableToolBench's `test_instruction/*.json` under `dir`: every app (`tool_name`), endpoint
/// (`api_name`) and `app::endpoint` id, as the tool-search bench builds them.
fn toolbench_ids(dir: &Path) -> Vec<String> {
    let files = dir.join("test_instruction");
    let files = if files.is_dir() {
        files
    } else {
        dir.to_path_buf()
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&files)
        .unwrap_or_else(|e| panic!("{}: {e}", files.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no JSON files in {}", files.display());
    let mut ids = BTreeSet::new();
    for path in paths {
        let queries: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for api in queries
            .iter()
            .flat_map(|q| q["api_list"].as_array().into_iter().flatten())
        {
            let (Some(app), Some(endpoint)) = (api["tool_name"].as_str(), api["api_name"].as_str())
            else {
                continue;
            };
            ids.insert(format!("{}::{}", app.trim(), endpoint.trim()));
            ids.insert(app.to_string());
            ids.insert(endpoint.to_string());
        }
    }
    ids.into_iter().collect()
}

#[test]
fn every_slug_of_the_shared_catalog_with_20000_generated_ids() {
    let Some(dir) = std::env::var_os("LOGLINE_TOOLBENCH_DIR") else {
        println!(
            "skipped: LOGLINE_TOOLBENCH_DIR is not set (point it at the StableToolBench data)"
        );
        return;
    };
    let catalog = toolbench_ids(Path::new(&dir));
    assert!(catalog.len() > 1000, "{} ids", catalog.len());
    let alone = check(&catalog);
    let mut all = catalog.clone();
    all.extend(generated(20_000));
    let together = check(&all);
    // Stable: a catalog id whose name nobody else wants keeps it next to 20,000 others.
    let moved = catalog
        .iter()
        .filter(|id| alone.function_name(id) != together.function_name(id))
        .count();
    println!(
        "{} catalog ids, {} in one map with the generated ones; {moved} renamed by a collision",
        catalog.len(),
        together.len()
    );
    assert!(moved * 100 <= catalog.len(), "{moved} renamed");
}
