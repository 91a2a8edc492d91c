//! The OperatorService: search attribute registration per namespace, and the cluster's
//! Nexus endpoints (`nexus_endpoints.rs`). Every other call answers UNIMPLEMENTED.

use std::sync::Arc;

use temper_proto::api::operatorservice::v1::operator_service_server::OperatorService;
use temper_proto::temporal::api::enums::v1::IndexedValueType;
use temper_proto::temporal::api::operatorservice::v1::{
    AddSearchAttributesRequest, AddSearchAttributesResponse, ListSearchAttributesRequest,
    ListSearchAttributesResponse, RemoveSearchAttributesRequest, RemoveSearchAttributesResponse,
};
use tonic::{Request, Response, Status};

use temper_client::nexus_endpoints::NexusEndpoints;
use temper_proto::temporal::api::operatorservice::v1::{
    CreateNexusEndpointRequest, CreateNexusEndpointResponse, DeleteNexusEndpointRequest,
    DeleteNexusEndpointResponse, GetNexusEndpointRequest, GetNexusEndpointResponse,
    ListNexusEndpointsRequest, ListNexusEndpointsResponse, UpdateNexusEndpointRequest,
    UpdateNexusEndpointResponse,
};

use crate::namespaces::Namespaces;
use crate::search_attributes::{self, MAX_CUSTOM};

pub struct Operator {
    pub(crate) namespaces: Arc<Namespaces>,
    pub(crate) endpoints: Arc<NexusEndpoints>,
}

impl Operator {
    pub fn new(namespaces: Arc<Namespaces>, endpoints: Arc<NexusEndpoints>) -> Self {
        Self {
            namespaces,
            endpoints,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[tonic::async_trait]
impl OperatorService for Operator {
    async fn add_search_attributes(
        &self,
        r: Request<AddSearchAttributesRequest>,
    ) -> Result<Response<AddSearchAttributesResponse>, Status> {
        let r = r.into_inner();
        if r.search_attributes.is_empty() {
            return Err(Status::invalid_argument(
                "SearchAttributes are not set on request.",
            ));
        }
        for (name, t) in &r.search_attributes {
            if !valid_name(name) {
                return Err(Status::invalid_argument(format!(
                    "Search attribute name {name} is not valid."
                )));
            }
            if search_attributes::is_system(name) {
                return Err(Status::invalid_argument(format!(
                    "Search attribute {name} is reserved by system."
                )));
            }
            match IndexedValueType::try_from(*t) {
                Ok(IndexedValueType::Unspecified) | Err(_) => {
                    return Err(Status::invalid_argument(format!(
                        "Unknown search attribute type: {t}."
                    )));
                }
                Ok(_) => {}
            }
        }
        self.namespaces
            .modify(&r.namespace, |detail| {
                for (name, t) in &r.search_attributes {
                    match detail.search_attributes.get(name) {
                        Some(existing) if existing == t => {}
                        Some(_) => {
                            return Err(Status::already_exists(format!(
                                "Search attribute {name} already exists with a different type."
                            )));
                        }
                        None => {
                            detail.search_attributes.insert(name.clone(), *t);
                        }
                    }
                }
                if detail.search_attributes.len() > MAX_CUSTOM {
                    return Err(Status::invalid_argument(format!(
                        "Unable to create search attributes: cannot have more than {MAX_CUSTOM} search attributes."
                    )));
                }
                Ok(())
            })
            .await?;
        Ok(Response::new(AddSearchAttributesResponse::default()))
    }

    async fn remove_search_attributes(
        &self,
        r: Request<RemoveSearchAttributesRequest>,
    ) -> Result<Response<RemoveSearchAttributesResponse>, Status> {
        let r = r.into_inner();
        if r.search_attributes.is_empty() {
            return Err(Status::invalid_argument(
                "SearchAttributes are not set on request.",
            ));
        }
        self.namespaces
            .modify(&r.namespace, |detail| {
                for name in &r.search_attributes {
                    if search_attributes::is_system(name) {
                        return Err(Status::invalid_argument(format!(
                            "Unable to remove non-custom search attributes: {name}."
                        )));
                    }
                    if detail.search_attributes.remove(name).is_none() {
                        return Err(temper_client::status::not_found(format!(
                            "Search attribute {name} doesn't exist."
                        )));
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Response::new(RemoveSearchAttributesResponse::default()))
    }

    async fn list_search_attributes(
        &self,
        r: Request<ListSearchAttributesRequest>,
    ) -> Result<Response<ListSearchAttributesResponse>, Status> {
        let r = r.into_inner();
        let ns = self.namespaces.get(&r.namespace).await?;
        Ok(Response::new(ListSearchAttributesResponse {
            custom_attributes: ns.detail.search_attributes.clone(),
            system_attributes: search_attributes::system_map(),
            storage_schema: Default::default(),
        }))
    }

    async fn create_nexus_endpoint(
        &self,
        r: Request<CreateNexusEndpointRequest>,
    ) -> Result<Response<CreateNexusEndpointResponse>, Status> {
        Ok(Response::new(self.nexus_create(r.into_inner()).await?))
    }

    async fn update_nexus_endpoint(
        &self,
        r: Request<UpdateNexusEndpointRequest>,
    ) -> Result<Response<UpdateNexusEndpointResponse>, Status> {
        Ok(Response::new(self.nexus_update(r.into_inner()).await?))
    }

    async fn delete_nexus_endpoint(
        &self,
        r: Request<DeleteNexusEndpointRequest>,
    ) -> Result<Response<DeleteNexusEndpointResponse>, Status> {
        Ok(Response::new(self.nexus_delete(r.into_inner()).await?))
    }

    async fn get_nexus_endpoint(
        &self,
        r: Request<GetNexusEndpointRequest>,
    ) -> Result<Response<GetNexusEndpointResponse>, Status> {
        Ok(Response::new(self.nexus_get(r.into_inner()).await?))
    }

    async fn list_nexus_endpoints(
        &self,
        r: Request<ListNexusEndpointsRequest>,
    ) -> Result<Response<ListNexusEndpointsResponse>, Status> {
        Ok(Response::new(self.nexus_list(r.into_inner()).await?))
    }
}
