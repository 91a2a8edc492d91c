//! Nexus endpoints: unique by id and by name, updates conditional on the version, renames
//! that free the old name, deletes, listing by name.

use crate::{NexusEndpointRecord, Persistence, StoreError};

fn endpoint(id: &str, name: &str) -> NexusEndpointRecord {
    NexusEndpointRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        version: 1,
        data: format!("spec of {name}").into_bytes(),
    }
}

/// `record` at its next version, with `name` and new data.
fn next(record: &NexusEndpointRecord, name: &str) -> NexusEndpointRecord {
    NexusEndpointRecord {
        id: record.id.clone(),
        name: name.to_owned(),
        version: record.version + 1,
        data: format!("spec of {name} v{}", record.version + 1).into_bytes(),
    }
}

async fn names(p: &Persistence) -> Vec<String> {
    p.nexus_endpoints
        .list_nexus_endpoints()
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Create, refuse a taken id or name, read back; the refused creations leave nothing.
pub async fn case_nexus_endpoint_create_and_get(p: &Persistence) {
    let s = &p.nexus_endpoints;
    assert_eq!(s.get_nexus_endpoint("ep-1").await.expect("get"), None);
    assert!(s.list_nexus_endpoints().await.expect("list").is_empty());

    let orders = endpoint("ep-1", "orders");
    s.create_nexus_endpoint(&orders).await.expect("create");

    let err = s
        .create_nexus_endpoint(&endpoint("ep-2", "orders"))
        .await
        .expect_err("duplicate name");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    let err = s
        .create_nexus_endpoint(&endpoint("ep-1", "payments"))
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");

    assert_eq!(
        s.get_nexus_endpoint("ep-1").await.expect("get"),
        Some(orders.clone())
    );
    assert_eq!(s.get_nexus_endpoint("ep-2").await.expect("get"), None);
    assert_eq!(
        s.list_nexus_endpoints().await.expect("list"),
        vec![orders],
        "the refused creations left nothing behind"
    );
    // The id refused above did not take its name.
    s.create_nexus_endpoint(&endpoint("ep-3", "payments"))
        .await
        .expect("the name of a refused creation is free");
}

/// Creations racing for one name: exactly one wins, the others are AlreadyExists.
pub async fn case_nexus_endpoint_concurrent_creates_one_name(p: &Persistence) {
    let mut racers = Vec::new();
    for i in 0..4 {
        let p = p.clone();
        racers.push(tokio::spawn(async move {
            let record = endpoint(&format!("ep-{i}"), "shared");
            p.nexus_endpoints.create_nexus_endpoint(&record).await
        }));
    }
    let mut winners = Vec::new();
    let mut unknown = Vec::new();
    for (i, racer) in racers.into_iter().enumerate() {
        match racer.await.expect("racer task") {
            Ok(()) => winners.push(format!("ep-{i}")),
            Err(StoreError::AlreadyExists(_)) => {}
            // On a replicated store contending consensus rounds may time out: the racer
            // must then not claim it won, and the store still holds one endpoint.
            Err(StoreError::OutcomeUnknown(why) | StoreError::Unavailable(why)) => {
                unknown.push((i, why));
            }
            Err(err) => panic!("racer {i}: {err:?}"),
        }
    }
    assert!(
        winners.len() <= 1,
        "more than one creation won: {winners:?}"
    );
    if unknown.is_empty() {
        assert_eq!(winners.len(), 1, "one creation wins");
    }
    let listed = p
        .nexus_endpoints
        .list_nexus_endpoints()
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "one endpoint holds the name: {listed:?}");
    assert_eq!(listed[0].name, "shared");
    if let Some(winner) = winners.first() {
        assert_eq!(&listed[0].id, winner);
    }
    for i in 0..4 {
        let id = format!("ep-{i}");
        let got = p
            .nexus_endpoints
            .get_nexus_endpoint(&id)
            .await
            .expect("get");
        assert_eq!(
            got.is_some(),
            id == listed[0].id,
            "{id}: {got:?} ({unknown:?})"
        );
    }
}

/// Updates are conditional on the version; a missing endpoint is NotFound.
pub async fn case_nexus_endpoint_update_is_conditional(p: &Persistence) {
    let s = &p.nexus_endpoints;
    let v1 = endpoint("ep-1", "orders");
    s.create_nexus_endpoint(&v1).await.expect("create");
    let bystander = endpoint("ep-2", "bystander");
    s.create_nexus_endpoint(&bystander)
        .await
        .expect("create bystander");

    let v2 = next(&v1, "orders");
    s.update_nexus_endpoint(1, &v2)
        .await
        .expect("update from version 1");
    assert_eq!(
        s.get_nexus_endpoint("ep-1").await.expect("get"),
        Some(v2.clone())
    );

    // A writer that read version 1 is too late.
    let stale = NexusEndpointRecord {
        data: b"stale writer".to_vec(),
        ..v2.clone()
    };
    let err = s
        .update_nexus_endpoint(1, &stale)
        .await
        .expect_err("stale version");
    assert!(matches!(err, StoreError::ConditionFailed(_)), "{err:?}");
    // Also when the stale writer renames.
    let err = s
        .update_nexus_endpoint(1, &next(&v1, "renamed-late"))
        .await
        .expect_err("stale version with a rename");
    assert!(matches!(err, StoreError::ConditionFailed(_)), "{err:?}");
    assert_eq!(
        s.get_nexus_endpoint("ep-1").await.expect("get"),
        Some(v2.clone()),
        "a failed update changes nothing"
    );
    assert_eq!(names(p).await, vec!["bystander", "orders"]);
    s.create_nexus_endpoint(&endpoint("ep-3", "renamed-late"))
        .await
        .expect("a failed rename does not keep the name");

    let v3 = next(&v2, "orders");
    s.update_nexus_endpoint(2, &v3)
        .await
        .expect("update from version 2");
    assert_eq!(s.get_nexus_endpoint("ep-1").await.expect("get"), Some(v3));
    assert_eq!(
        s.get_nexus_endpoint("ep-2").await.expect("get"),
        Some(bystander),
        "other endpoints are untouched"
    );

    let err = s
        .update_nexus_endpoint(1, &endpoint("ep-missing", "missing"))
        .await
        .expect_err("missing endpoint");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(s.get_nexus_endpoint("ep-missing").await.expect("get"), None);
    assert!(!names(p).await.contains(&"missing".to_owned()));
}

/// A rename to a free name moves the endpoint and frees the old name; a rename to a taken
/// name is AlreadyExists and changes nothing.
pub async fn case_nexus_endpoint_rename(p: &Persistence) {
    let s = &p.nexus_endpoints;
    let orders = endpoint("ep-1", "orders");
    let payments = endpoint("ep-2", "payments");
    s.create_nexus_endpoint(&orders).await.expect("create");
    s.create_nexus_endpoint(&payments).await.expect("create");

    let err = s
        .update_nexus_endpoint(1, &next(&orders, "payments"))
        .await
        .expect_err("renamed onto another endpoint's name");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        s.get_nexus_endpoint("ep-1").await.expect("get"),
        Some(orders.clone()),
        "the refused rename changed nothing"
    );
    assert_eq!(
        s.get_nexus_endpoint("ep-2").await.expect("get"),
        Some(payments.clone())
    );

    let renamed = next(&orders, "shipping");
    s.update_nexus_endpoint(1, &renamed)
        .await
        .expect("rename to a free name");
    assert_eq!(
        s.get_nexus_endpoint("ep-1").await.expect("get"),
        Some(renamed.clone())
    );
    assert_eq!(names(p).await, vec!["payments", "shipping"]);

    // The old name is free: another endpoint takes it, and the renamed one cannot have it
    // back.
    let newcomer = endpoint("ep-3", "orders");
    s.create_nexus_endpoint(&newcomer)
        .await
        .expect("the old name is free");
    let err = s
        .update_nexus_endpoint(2, &next(&renamed, "orders"))
        .await
        .expect_err("the old name is taken again");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    // The new name is held: nobody else may create it.
    let err = s
        .create_nexus_endpoint(&endpoint("ep-4", "shipping"))
        .await
        .expect_err("the new name is held");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");

    // Renaming back and forth keeps exactly one holder per name.
    let back = next(&renamed, "orders-2");
    s.update_nexus_endpoint(2, &back).await.expect("rename");
    s.update_nexus_endpoint(3, &next(&back, "shipping"))
        .await
        .expect("rename back to a name it held before");
    assert_eq!(names(p).await, vec!["orders", "payments", "shipping"]);
}

/// Delete frees the name; a second delete is NotFound; the name can be created again.
pub async fn case_nexus_endpoint_delete(p: &Persistence) {
    let s = &p.nexus_endpoints;
    let err = s
        .delete_nexus_endpoint("ep-1")
        .await
        .expect_err("nothing to delete");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let orders = endpoint("ep-1", "orders");
    s.create_nexus_endpoint(&orders).await.expect("create");
    s.create_nexus_endpoint(&endpoint("ep-2", "payments"))
        .await
        .expect("create");
    // Deleting after updates (the version moved on) still deletes.
    s.update_nexus_endpoint(1, &next(&orders, "orders"))
        .await
        .expect("update");
    s.delete_nexus_endpoint("ep-1").await.expect("delete");
    assert_eq!(s.get_nexus_endpoint("ep-1").await.expect("get"), None);
    assert_eq!(names(p).await, vec!["payments"]);
    let err = s
        .delete_nexus_endpoint("ep-1")
        .await
        .expect_err("deleted already");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = s
        .update_nexus_endpoint(2, &next(&next(&orders, "orders"), "orders"))
        .await
        .expect_err("a deleted endpoint cannot be updated");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // The name is free again, for a new id or the old one.
    let again = endpoint("ep-9", "orders");
    s.create_nexus_endpoint(&again)
        .await
        .expect("create with the deleted endpoint's name");
    assert_eq!(
        s.get_nexus_endpoint("ep-9").await.expect("get"),
        Some(again)
    );
    s.create_nexus_endpoint(&endpoint("ep-1", "orders-again"))
        .await
        .expect("create with the deleted endpoint's id");
    assert_eq!(names(p).await, vec!["orders", "orders-again", "payments"]);
}

/// Listing returns every endpoint, ordered by name (not by id or creation order).
pub async fn case_nexus_endpoint_list_by_name(p: &Persistence) {
    let s = &p.nexus_endpoints;
    let created = [
        ("ep-1", "echo"),
        ("ep-5", "alpha"),
        ("ep-2", "delta"),
        ("ep-4", "bravo"),
        ("ep-3", "charlie"),
    ];
    for (id, name) in created {
        s.create_nexus_endpoint(&endpoint(id, name))
            .await
            .expect("create");
    }
    let listed = s.list_nexus_endpoints().await.expect("list");
    assert_eq!(
        listed,
        vec![
            endpoint("ep-5", "alpha"),
            endpoint("ep-4", "bravo"),
            endpoint("ep-3", "charlie"),
            endpoint("ep-2", "delta"),
            endpoint("ep-1", "echo"),
        ]
    );
    // A rename moves the endpoint in the order.
    s.update_nexus_endpoint(1, &next(&endpoint("ep-1", "echo"), "aardvark"))
        .await
        .expect("rename");
    assert_eq!(
        names(p).await,
        vec!["aardvark", "alpha", "bravo", "charlie", "delta"]
    );
}
