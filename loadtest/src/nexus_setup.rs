//! The Nexus endpoints of a `nexus` run: one per namespace, targeting the generator's Nexus
//! task queue in that namespace. Created when missing (an endpoint of that name that targets
//! something else stops the run), and deleted at the end if this run created it.

use temporalio_protos::temporal::api::nexus::v1::{
    Endpoint, EndpointSpec, EndpointTarget, endpoint_target,
};
use temporalio_protos::temporal::api::operatorservice::v1::{
    CreateNexusEndpointRequest, DeleteNexusEndpointRequest, ListNexusEndpointsRequest,
};
use tonic::{Code, Status};

use crate::client::{Clients, req, retry};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("creating Nexus endpoint {name}: {status}")]
    Create { name: String, status: Status },
    #[error("looking up Nexus endpoint {name}: {status}")]
    Lookup { name: String, status: Status },
    #[error(
        "Nexus endpoint {name} exists but targets {found}, not namespace {namespace} task queue \
         {task_queue}; delete it (temporal operator nexus endpoint delete --name {name}) or \
         run with another --task-queue"
    )]
    OtherTarget {
        name: String,
        found: String,
        namespace: String,
        task_queue: String,
    },
}

/// An endpoint this run created, to delete at the end.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub version: i64,
}

fn worker_target(namespace: &str, task_queue: &str) -> EndpointTarget {
    EndpointTarget {
        variant: Some(endpoint_target::Variant::Worker(endpoint_target::Worker {
            namespace: namespace.to_string(),
            task_queue: task_queue.to_string(),
        })),
    }
}

/// Make sure endpoint `name` routes to `task_queue` in `namespace`. `Some` if this call
/// created it.
pub async fn ensure(
    clients: &Clients,
    name: &str,
    namespace: &str,
    task_queue: &str,
) -> Result<Option<Created>, EndpointError> {
    let target = worker_target(namespace, task_queue);
    let request = CreateNexusEndpointRequest {
        spec: Some(EndpointSpec {
            name: name.to_string(),
            description: None,
            target: Some(target.clone()),
        }),
    };
    let created = retry(|| {
        let mut c = clients.operator();
        let r = req(request.clone());
        async move { c.create_nexus_endpoint(r).await }
    })
    .await;
    match created {
        Ok(r) => {
            let e = r.into_inner().endpoint.unwrap_or_default();
            Ok(Some(Created {
                id: e.id,
                version: e.version,
            }))
        }
        Err(s) if s.code() == Code::AlreadyExists => {
            let found = lookup(clients, name).await?;
            let found_target = found.and_then(|e| e.spec).and_then(|s| s.target);
            if found_target.as_ref() == Some(&target) {
                return Ok(None);
            }
            Err(EndpointError::OtherTarget {
                name: name.to_string(),
                found: describe(found_target.as_ref()),
                namespace: namespace.to_string(),
                task_queue: task_queue.to_string(),
            })
        }
        Err(status) => Err(EndpointError::Create {
            name: name.to_string(),
            status,
        }),
    }
}

async fn lookup(clients: &Clients, name: &str) -> Result<Option<Endpoint>, EndpointError> {
    let request = ListNexusEndpointsRequest {
        page_size: 10,
        next_page_token: Vec::new(),
        name: name.to_string(),
    };
    let listed = retry(|| {
        let mut c = clients.operator();
        let r = req(request.clone());
        async move { c.list_nexus_endpoints(r).await }
    })
    .await
    .map_err(|status| EndpointError::Lookup {
        name: name.to_string(),
        status,
    })?;
    Ok(listed
        .into_inner()
        .endpoints
        .into_iter()
        .find(|e| e.spec.as_ref().is_some_and(|s| s.name == name)))
}

fn describe(t: Option<&EndpointTarget>) -> String {
    match t.and_then(|t| t.variant.as_ref()) {
        Some(endpoint_target::Variant::Worker(w)) => {
            format!("namespace {} task queue {}", w.namespace, w.task_queue)
        }
        Some(endpoint_target::Variant::External(e)) => format!("the URL {}", e.url),
        None => "nothing".to_string(),
    }
}

/// Best effort: delete an endpoint this run created.
pub async fn delete(clients: &Clients, created: &Created) {
    let request = DeleteNexusEndpointRequest {
        id: created.id.clone(),
        version: created.version,
    };
    let _ = clients.operator().delete_nexus_endpoint(req(request)).await;
}
