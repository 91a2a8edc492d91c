//! Namespaces: unique by name and by id, conditional updates, listing.

use temper_types::NamespaceId;

use crate::{NamespaceRecord, Persistence, StoreError};

fn namespace(id: &str, name: &str) -> NamespaceRecord {
    NamespaceRecord {
        id: NamespaceId(id.to_owned()),
        name: name.to_owned(),
        detail: format!("detail of {name}").into_bytes(),
        notification_version: 0,
    }
}

/// Create, refuse duplicates of name or id, read back by either.
pub async fn case_namespace_create_and_get(p: &Persistence) {
    let s = &p.namespaces;
    let default = namespace("id-1", "default");
    s.create_namespace(&default).await.expect("create");

    let err = s
        .create_namespace(&namespace("id-2", "default"))
        .await
        .expect_err("duplicate name");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    let err = s
        .create_namespace(&namespace("id-1", "other-name"))
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");

    assert_eq!(
        s.get_namespace_by_name("default").await.expect("by name"),
        Some(default.clone())
    );
    assert_eq!(
        s.get_namespace_by_id(&default.id).await.expect("by id"),
        Some(default.clone())
    );
    // The refused creations left nothing behind.
    assert_eq!(
        s.get_namespace_by_id(&NamespaceId("id-2".to_owned()))
            .await
            .expect("by id"),
        None
    );
    assert_eq!(
        s.get_namespace_by_name("other-name")
            .await
            .expect("by name"),
        None
    );
    assert_eq!(
        s.get_namespace_by_name("Default").await.expect("by name"),
        None,
        "names are case-sensitive"
    );
    assert_eq!(
        s.list_namespaces(None, 100).await.expect("list"),
        vec![default]
    );
}

/// Updates are conditional on the notification version.
pub async fn case_namespace_update_is_conditional(p: &Persistence) {
    let s = &p.namespaces;
    let original = namespace("id-1", "default");
    s.create_namespace(&original).await.expect("create");
    s.create_namespace(&namespace("id-2", "bystander"))
        .await
        .expect("create bystander");

    let v1 = NamespaceRecord {
        detail: b"retention 7d".to_vec(),
        notification_version: 1,
        ..original.clone()
    };
    s.update_namespace(0, &v1)
        .await
        .expect("update from version 0");
    assert_eq!(
        s.get_namespace_by_id(&original.id).await.expect("by id"),
        Some(v1.clone())
    );

    let stale = NamespaceRecord {
        detail: b"stale writer".to_vec(),
        notification_version: 1,
        ..original.clone()
    };
    let err = s
        .update_namespace(0, &stale)
        .await
        .expect_err("stale version");
    assert!(matches!(err, StoreError::ConditionFailed(_)), "{err:?}");
    assert_eq!(
        s.get_namespace_by_name("default").await.expect("by name"),
        Some(v1.clone()),
        "a failed update changes nothing"
    );

    let v2 = NamespaceRecord {
        detail: b"retention 30d".to_vec(),
        notification_version: 2,
        ..v1.clone()
    };
    s.update_namespace(1, &v2)
        .await
        .expect("update from version 1");
    assert_eq!(
        s.get_namespace_by_name("default").await.expect("by name"),
        Some(v2)
    );
    assert_eq!(
        s.get_namespace_by_name("bystander")
            .await
            .expect("by name")
            .map(|n| n.notification_version),
        Some(0)
    );

    // Updating a namespace that does not exist fails.
    s.update_namespace(0, &namespace("id-missing", "missing"))
        .await
        .expect_err("missing namespace");
    assert_eq!(
        s.get_namespace_by_name("missing").await.expect("by name"),
        None
    );
}

/// Listing is ordered by name and pages with `after_name`.
pub async fn case_namespace_list_paging(p: &Persistence) {
    let s = &p.namespaces;
    assert!(s.list_namespaces(None, 10).await.expect("list").is_empty());
    for (id, name) in [
        ("5", "echo"),
        ("1", "alpha"),
        ("4", "delta"),
        ("2", "bravo"),
        ("3", "charlie"),
    ] {
        s.create_namespace(&namespace(id, name))
            .await
            .expect("create");
    }

    let mut names = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let page = s.list_namespaces(after.as_deref(), 2).await.expect("list");
        assert!(page.len() <= 2, "limit is respected");
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        pages += 1;
        names.extend(page.into_iter().map(|n| n.name));
    }
    assert_eq!(names, vec!["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(pages, 3);

    let after_c = s.list_namespaces(Some("c"), 10).await.expect("list");
    assert_eq!(
        after_c.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        vec!["charlie", "delta", "echo"],
        "after_name need not be an existing name"
    );
    assert_eq!(after_c[0], namespace("3", "charlie"));
    assert!(
        s.list_namespaces(Some("echo"), 10)
            .await
            .expect("list")
            .is_empty()
    );
}
