//! Agent memory store checks ([`RecallStore`]).

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::recall::{
    MemoryFilter, MemoryItem, MemoryKind, Owner, OwnerKind, ReadScope, RecallStore, Visibility,
};
use crate::ErrorKind;

fn user(id: &str) -> Owner {
    Owner::new(OwnerKind::User, id)
}

fn item(tenant: &str, owner: Owner, content: &str, v: [f32; 3]) -> MemoryItem {
    let mut i = MemoryItem::new(tenant, owner, content);
    i.embedding = v.to_vec();
    i
}

fn scope(tenant: &str, owners: &[Owner], shared: bool) -> ReadScope {
    ReadScope {
        tenant_id: tenant.into(),
        owners: owners.to_vec(),
        shared,
    }
}

fn any() -> MemoryFilter {
    MemoryFilter::default()
}

/// Every field survives a round trip; a replace by the same owner keeps `created_at`; an id
/// of another owner or tenant is a conflict.
pub async fn items_round_trip_and_ids_are_owned(store: Arc<dyn RecallStore>) {
    let mut a = item(
        "t1",
        user("alice"),
        "Alice likes window seats",
        [1.0, 0.0, 0.0],
    );
    a.kind = MemoryKind::Profile;
    a.visibility = Visibility::Tenant;
    a.metadata = json!({"topic": "travel", "tags": ["seat"], "n": 2})
        .as_object()
        .cloned()
        .expect("object");
    a.expires_at = Some(Utc::now() + Duration::hours(1));
    store.put(&a).await.expect("put");
    let me = scope("t1", &[user("alice")], false);
    let got = store.get(&me, a.id).await.expect("get");
    assert_eq!(got.content, a.content);
    assert_eq!(got.kind, MemoryKind::Profile);
    assert_eq!(got.visibility, Visibility::Tenant);
    assert_eq!(got.metadata, a.metadata);
    assert_eq!(got.owner, a.owner);
    assert_eq!(got.embedding, a.embedding);
    let exp = got.expires_at.expect("expiry");
    assert!((exp - a.expires_at.expect("set")).num_milliseconds().abs() <= 1);

    let mut replaced = a.clone();
    replaced.content = "Alice likes aisle seats".into();
    replaced.created_at = Utc::now() + Duration::days(1);
    store.put(&replaced).await.expect("replace");
    let got = store.get(&me, a.id).await.expect("get");
    assert_eq!(got.content, "Alice likes aisle seats");
    assert!((got.created_at - a.created_at).num_milliseconds().abs() <= 1);

    let mut stolen = a.clone();
    stolen.owner = user("mallory");
    let err = store.put(&stolen).await.expect_err("other owner");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let mut other_tenant = a.clone();
    other_tenant.tenant_id = "t2".into();
    let err = store.put(&other_tenant).await.expect_err("other tenant");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        store.get(&me, a.id).await.expect("still there").content,
        "Alice likes aisle seats"
    );
}

/// Reads never cross tenants or private owners; tenant-visible items are shared only with
/// scopes that ask for shared items. Foreign items are "not found".
pub async fn reads_stay_within_tenant_and_owner(store: Arc<dyn RecallStore>) {
    let mine = item("t1", user("alice"), "alice private", [1.0, 0.0, 0.0]);
    let mut shared = item("t1", user("bob"), "bob shared", [0.9, 0.1, 0.0]);
    shared.visibility = Visibility::Tenant;
    let bobs = item("t1", user("bob"), "bob private", [0.95, 0.05, 0.0]);
    let mut other_tenant = item("t2", user("alice"), "t2 alice", [1.0, 0.0, 0.0]);
    other_tenant.visibility = Visibility::Tenant;
    for i in [&mine, &shared, &bobs, &other_tenant] {
        store.put(i).await.expect("put");
    }
    let alice = scope("t1", &[user("alice")], true);
    let strict = scope("t1", &[user("alice")], false);
    let contents = |items: Vec<MemoryItem>| {
        let mut v: Vec<String> = items.into_iter().map(|i| i.content).collect();
        v.sort();
        v
    };
    assert_eq!(
        contents(store.list(&alice, &any(), 10).await.expect("list")),
        vec!["alice private", "bob shared"]
    );
    assert_eq!(
        contents(store.list(&strict, &any(), 10).await.expect("list")),
        vec!["alice private"]
    );
    let found = store
        .search(&alice, &[1.0, 0.0, 0.0], &any(), 10)
        .await
        .expect("search");
    assert_eq!(
        contents(found.into_iter().map(|s| s.item).collect()),
        vec!["alice private", "bob shared"]
    );
    for foreign in [bobs.id, other_tenant.id] {
        let err = store.get(&alice, foreign).await.expect_err("foreign");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
    let err = store
        .get(&alice, Uuid::now_v7())
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let nobody = scope("t3", &[user("alice")], true);
    assert!(store
        .list(&nobody, &any(), 10)
        .await
        .expect("list")
        .is_empty());
}

/// Search orders by cosine similarity, honours the limit, and filters by kind and metadata
/// (JSON containment).
pub async fn search_ranks_by_similarity_with_filters(store: Arc<dyn RecallStore>) {
    let me = user("alice");
    let vectors = [
        (
            "north",
            [1.0, 0.0, 0.0],
            MemoryKind::LongTerm,
            json!({"lang": "en"}),
        ),
        (
            "north-east",
            [1.0, 1.0, 0.0],
            MemoryKind::LongTerm,
            json!({"lang": "en", "doc": {"page": 2}}),
        ),
        (
            "east",
            [0.0, 2.0, 0.0],
            MemoryKind::ShortTerm,
            json!({"lang": "pt"}),
        ),
        (
            "up",
            [0.0, 0.0, 1.0],
            MemoryKind::Profile,
            json!({"lang": "en"}),
        ),
        (
            "south",
            [-1.0, 0.0, 0.0],
            MemoryKind::LongTerm,
            json!({"lang": "en"}),
        ),
    ];
    for (name, v, kind, meta) in vectors {
        let mut i = item("t1", me.clone(), name, v);
        i.kind = kind;
        i.metadata = meta.as_object().cloned().expect("object");
        store.put(&i).await.expect("put");
    }
    let s = scope("t1", std::slice::from_ref(&me), false);
    let found = store
        .search(&s, &[2.0, 0.2, 0.0], &any(), 3)
        .await
        .expect("search");
    let names: Vec<&str> = found.iter().map(|f| f.item.content.as_str()).collect();
    assert_eq!(names, vec!["north", "north-east", "east"]);
    assert!(found[0].score > found[1].score && found[1].score > found[2].score);
    assert!((found[0].score - 0.995).abs() < 0.01, "{}", found[0].score);

    let long_term = MemoryFilter {
        kinds: vec![MemoryKind::LongTerm],
        ..Default::default()
    };
    let found = store
        .search(&s, &[0.1, 1.0, 0.0], &long_term, 10)
        .await
        .expect("search");
    let names: Vec<&str> = found.iter().map(|f| f.item.content.as_str()).collect();
    assert_eq!(names, vec!["north-east", "north", "south"]);

    let page2 = MemoryFilter {
        metadata: json!({"doc": {"page": 2}})
            .as_object()
            .cloned()
            .expect("object"),
        ..Default::default()
    };
    let found = store
        .search(&s, &[0.0, 0.0, 1.0], &page2, 10)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].item.content, "north-east");
    let pt = MemoryFilter {
        metadata: json!({"lang": "pt"}).as_object().cloned().expect("object"),
        kinds: vec![MemoryKind::LongTerm],
    };
    assert!(store
        .search(&s, &[0.0, 1.0, 0.0], &pt, 10)
        .await
        .expect("search")
        .is_empty());
}

/// Lists are newest first and limited.
pub async fn lists_are_newest_first(store: Arc<dyn RecallStore>) {
    let me = user("alice");
    let base = Utc::now() - Duration::minutes(10);
    for n in 0..5 {
        let mut i = item("t1", me.clone(), &format!("note {n}"), [1.0, n as f32, 0.0]);
        i.created_at = base + Duration::seconds(n);
        i.updated_at = i.created_at;
        store.put(&i).await.expect("put");
    }
    let got = store
        .list(&scope("t1", &[me], false), &any(), 3)
        .await
        .expect("list");
    let names: Vec<&str> = got.iter().map(|i| i.content.as_str()).collect();
    assert_eq!(names, vec!["note 4", "note 3", "note 2"]);
}

/// Deletes remove only what the given owners own in the tenant, by id and/or filter.
pub async fn deletes_touch_only_owned_items(store: Arc<dyn RecallStore>) {
    let mut shared = item("t1", user("bob"), "bob shared", [1.0, 0.0, 0.0]);
    shared.visibility = Visibility::Tenant;
    let mine = item("t1", user("alice"), "alice 1", [1.0, 0.0, 0.0]);
    let mut tagged = item("t1", user("alice"), "alice 2", [0.0, 1.0, 0.0]);
    tagged.metadata = json!({"resource_id": "r1"})
        .as_object()
        .cloned()
        .expect("object");
    let foreign = item("t2", user("alice"), "t2 alice", [1.0, 0.0, 0.0]);
    for i in [&shared, &mine, &tagged, &foreign] {
        store.put(i).await.expect("put");
    }
    let alice = [user("alice")];
    // Someone else's item, even tenant-visible, and another tenant's are not deleted.
    for id in [shared.id, foreign.id] {
        assert_eq!(
            store
                .delete("t1", &alice, &[id], &any())
                .await
                .expect("delete"),
            0
        );
    }
    let by_meta = MemoryFilter {
        metadata: json!({"resource_id": "r1"})
            .as_object()
            .cloned()
            .expect("object"),
        ..Default::default()
    };
    assert_eq!(
        store
            .delete("t1", &alice, &[], &by_meta)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        store
            .delete("t1", &alice, &[mine.id], &any())
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        store
            .delete("t1", &alice, &[mine.id], &any())
            .await
            .expect("again"),
        0
    );
    let everyone = scope("t1", &[user("alice"), user("bob")], true);
    let left: Vec<String> = store
        .list(&everyone, &any(), 10)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.content)
        .collect();
    assert_eq!(left, vec!["bob shared"]);
    let t2 = scope("t2", &[user("alice")], false);
    assert_eq!(store.list(&t2, &any(), 10).await.expect("list").len(), 1);
}

/// Expired items are invisible at once and purged in batches.
pub async fn expired_items_vanish_and_are_purged(store: Arc<dyn RecallStore>) {
    let me = user("alice");
    for n in 0..3 {
        let mut old = item("t1", me.clone(), &format!("old {n}"), [1.0, 0.0, 0.0]);
        old.kind = MemoryKind::ShortTerm;
        old.expires_at = Some(Utc::now() - Duration::seconds(5));
        store.put(&old).await.expect("put");
    }
    let mut live = item("t1", me.clone(), "live", [1.0, 0.0, 0.0]);
    live.expires_at = Some(Utc::now() + Duration::hours(1));
    store.put(&live).await.expect("put");
    let s = scope("t1", &[me], false);
    let names: Vec<String> = store
        .search(&s, &[1.0, 0.0, 0.0], &any(), 10)
        .await
        .expect("search")
        .into_iter()
        .map(|f| f.item.content)
        .collect();
    assert_eq!(names, vec!["live"]);
    assert_eq!(store.list(&s, &any(), 10).await.expect("list").len(), 1);
    assert_eq!(store.purge_expired(Utc::now(), 2).await.expect("purge"), 2);
    assert_eq!(store.purge_expired(Utc::now(), 2).await.expect("purge"), 1);
    assert_eq!(store.purge_expired(Utc::now(), 2).await.expect("purge"), 0);
    assert_eq!(store.get(&s, live.id).await.expect("live").content, "live");
}
