//! The OperatorService's Nexus endpoint calls: CreateNexusEndpoint, UpdateNexusEndpoint,
//! DeleteNexusEndpoint, GetNexusEndpoint and ListNexusEndpoints, over the cluster's
//! registry (`temper_client::nexus_endpoints`). What a spec may hold is checked here, with
//! the Temporal server's rules and words.

use prost::Message;
use temper_proto::temporal::api::nexus::v1::{EndpointSpec, endpoint_target};
use temper_proto::temporal::api::operatorservice::v1::{
    CreateNexusEndpointRequest, CreateNexusEndpointResponse, DeleteNexusEndpointRequest,
    DeleteNexusEndpointResponse, GetNexusEndpointRequest, GetNexusEndpointResponse,
    ListNexusEndpointsRequest, ListNexusEndpointsResponse, UpdateNexusEndpointRequest,
    UpdateNexusEndpointResponse,
};
use tonic::Status;

use crate::operator::Operator;

/// Longest endpoint name.
const MAX_NAME_LENGTH: usize = 200;
/// Largest description (its encoded Payload).
const MAX_DESCRIPTION_BYTES: usize = 20_000;
/// Longest task queue name.
const MAX_TASK_QUEUE_LENGTH: usize = 1000;
/// Largest ListNexusEndpoints page.
const MAX_PAGE_SIZE: i32 = 1000;
/// The name rule, as the Temporal server prints it (Go's %q of its regex).
const NAME_RULE: &str = r#""^[a-zA-Z][a-zA-Z0-9\\-]*[a-zA-Z0-9]$""#;

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// Names: a letter, then letters, digits or `-`, ending with a letter or digit (two
/// characters at least).
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// An endpoint id must be a UUID; the error reads as the Temporal server's (Go's uuid).
fn check_uuid(id: &str) -> Result<(), String> {
    if uuid::Uuid::parse_str(id).is_ok() {
        return Ok(());
    }
    Err(match id.len() {
        32 | 36 | 38 | 45 => "malformed endpoint ID: \"invalid UUID format\"".to_owned(),
        n => format!("malformed endpoint ID: \"invalid UUID length: {n}\""),
    })
}

/// What is wrong with a spec, each problem once, in the Temporal server's order (name,
/// target, description); empty when nothing is.
fn spec_problems(spec: &EndpointSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.name.is_empty() {
        problems.push("endpoint name not set".to_owned());
    } else {
        if spec.name.len() > MAX_NAME_LENGTH {
            problems.push(format!(
                "endpoint name exceeds length limit of {MAX_NAME_LENGTH}"
            ));
        }
        if !valid_name(&spec.name) {
            problems.push(format!("endpoint name must match the regex: {NAME_RULE}"));
        }
    }
    match spec.target.as_ref().and_then(|t| t.variant.as_ref()) {
        None => problems.push("empty target variant".to_owned()),
        Some(endpoint_target::Variant::Worker(w)) => {
            if w.namespace.is_empty() {
                problems.push("target namespace not set".to_owned());
            }
            let queue_problem = if w.task_queue.is_empty() {
                Some("taskQueue is not set")
            } else if w.task_queue.starts_with(temper_workflow::RESERVED_PREFIX) {
                Some("task queue name cannot start with reserved prefix /_sys/")
            } else if w.task_queue.len() > MAX_TASK_QUEUE_LENGTH {
                Some("taskQueue length exceeds limit")
            } else {
                None
            };
            if let Some(p) = queue_problem {
                problems.push(format!("invalid target task queue: \"{p}\""));
            }
        }
        Some(endpoint_target::Variant::External(x)) => {
            if let Some(p) = url_problem(&x.url) {
                problems.push(p);
            }
        }
    }
    if let Some(d) = &spec.description
        && d.encoded_len() > MAX_DESCRIPTION_BYTES
    {
        problems.push(format!(
            "description size exceeds limit of {MAX_DESCRIPTION_BYTES}"
        ));
    }
    problems
}

/// What is wrong with an external target's URL, as the Temporal server words it (Go's
/// URL parser's view of the scheme and host).
fn url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some("empty target URL".to_owned());
    }
    let scheme = url_scheme(url);
    if scheme != "http" && scheme != "https" {
        return Some(format!(
            "invalid target URL scheme: \"{scheme}\", expected http or https"
        ));
    }
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    host.chars()
        .find(|c| c.is_whitespace() || c.is_control())
        .map(|c| {
            format!("invalid target URL: parse \"{url}\": invalid character \"{c}\" in host name")
        })
}

impl Operator {
    /// Check a spec as the Temporal server does: a worker target's namespace must exist
    /// (checked first, FAILED_PRECONDITION), then every other problem at once.
    async fn check_spec(&self, spec: Option<&EndpointSpec>) -> Result<EndpointSpec, Status> {
        let spec = spec.cloned().unwrap_or_default();
        if let Some(endpoint_target::Variant::Worker(w)) =
            spec.target.as_ref().and_then(|t| t.variant.as_ref())
            && !w.namespace.is_empty()
            && let Err(e) = self.namespaces.get(&w.namespace).await
        {
            return Err(if e.code() == tonic::Code::NotFound {
                Status::failed_precondition(format!(
                    "could not verify namespace referenced by target exists: {}",
                    e.message()
                ))
            } else {
                e
            });
        }
        let problems = spec_problems(&spec);
        if !problems.is_empty() {
            return Err(invalid(problems.join(", ")));
        }
        Ok(spec)
    }

    pub(crate) async fn nexus_create(
        &self,
        r: CreateNexusEndpointRequest,
    ) -> Result<CreateNexusEndpointResponse, Status> {
        let spec = self.check_spec(r.spec.as_ref()).await?;
        let endpoint = self.endpoints.create(spec).await?;
        Ok(CreateNexusEndpointResponse {
            endpoint: Some(endpoint),
        })
    }

    pub(crate) async fn nexus_update(
        &self,
        r: UpdateNexusEndpointRequest,
    ) -> Result<UpdateNexusEndpointResponse, Status> {
        let spec = self.check_spec(r.spec.as_ref()).await?;
        let endpoint = self.endpoints.update(&r.id, r.version, spec).await?;
        Ok(UpdateNexusEndpointResponse {
            endpoint: Some(endpoint),
        })
    }

    pub(crate) async fn nexus_delete(
        &self,
        r: DeleteNexusEndpointRequest,
    ) -> Result<DeleteNexusEndpointResponse, Status> {
        let mut problems = Vec::new();
        if r.id.is_empty() {
            problems.push("endpoint ID not set".to_owned());
        } else if let Err(p) = check_uuid(&r.id) {
            problems.push(p);
        }
        if r.version <= 0 {
            problems.push("endpoint version is non-positive".to_owned());
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join(", ")));
        }
        self.endpoints.delete(&r.id, r.version).await?;
        Ok(DeleteNexusEndpointResponse::default())
    }

    pub(crate) async fn nexus_get(
        &self,
        r: GetNexusEndpointRequest,
    ) -> Result<GetNexusEndpointResponse, Status> {
        if r.id.is_empty() {
            return Err(invalid("endpoint ID not set"));
        }
        check_uuid(&r.id).map_err(invalid)?;
        let endpoint = self.endpoints.by_id(&r.id).await?.ok_or_else(|| {
            temper_client::status::not_found(format!("Nexus endpoint with ID `{}` not found", r.id))
        })?;
        Ok(GetNexusEndpointResponse {
            endpoint: Some(endpoint),
        })
    }

    /// A page of endpoints in id order (the Temporal server's); the token is the last id
    /// returned, and a full page always carries one. With `name`, that endpoint only.
    pub(crate) async fn nexus_list(
        &self,
        r: ListNexusEndpointsRequest,
    ) -> Result<ListNexusEndpointsResponse, Status> {
        if r.page_size < 0 {
            return Err(invalid("page_size is negative"));
        }
        if r.page_size > MAX_PAGE_SIZE {
            return Err(invalid(format!(
                "page_size exceeds limit of {MAX_PAGE_SIZE}"
            )));
        }
        let mut all = self.endpoints.reload().await?.as_ref().clone();
        if !r.name.is_empty() {
            all.retain(|e| e.spec.as_ref().is_some_and(|s| s.name == r.name));
            all.truncate(1);
            return Ok(ListNexusEndpointsResponse {
                next_page_token: Vec::new(),
                endpoints: all,
            });
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let after = if r.next_page_token.is_empty() {
            None
        } else {
            let last = std::str::from_utf8(&r.next_page_token)
                .ok()
                .filter(|t| uuid::Uuid::parse_str(t).is_ok())
                // The Temporal server answers INTERNAL; a token the caller garbled is the
                // caller's error.
                .ok_or_else(|| invalid("invalid next page token"))?;
            Some(last.to_owned())
        };
        let rest: Vec<_> = all
            .into_iter()
            .filter(|e| after.as_ref().is_none_or(|a| e.id > *a))
            .collect();
        if r.page_size == 0 {
            return Ok(ListNexusEndpointsResponse {
                next_page_token: Vec::new(),
                endpoints: rest,
            });
        }
        let endpoints: Vec<_> = rest.into_iter().take(r.page_size as usize).collect();
        let next_page_token = if endpoints.len() == r.page_size as usize {
            endpoints
                .last()
                .map(|e| e.id.clone().into_bytes())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(ListNexusEndpointsResponse {
            next_page_token,
            endpoints,
        })
    }
}

/// The scheme of a URL as Go's parser reads it: letters first, then letters, digits, `+`,
/// `-` or `.`, up to a `:`; lower-cased. Empty when there is none.
fn url_scheme(url: &str) -> String {
    for (i, c) in url.char_indices() {
        match c {
            c if c.is_ascii_alphabetic() => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return url[..i].to_ascii_lowercase(),
            _ => return String::new(),
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_follow_temporals_rule() {
        for ok in ["ab", "ABC", "a1", "a-b", "Ab-9-c"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "a", "1abc", "-abc", "ab-", "a_b", "_ab", "a.b", "a b", "ñ",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn spec_problems_are_all_reported_in_order() {
        let spec = EndpointSpec {
            name: "_".repeat(201),
            ..Default::default()
        };
        assert_eq!(
            spec_problems(&spec).join(", "),
            format!(
                "endpoint name exceeds length limit of 200, endpoint name must match the regex: \
                 {NAME_RULE}, empty target variant"
            )
        );
        assert_eq!(
            NAME_RULE, r#""^[a-zA-Z][a-zA-Z0-9\\-]*[a-zA-Z0-9]$""#,
            "printed as the Temporal server prints it"
        );
        assert_eq!(
            url_problem("ftp://x/y").as_deref(),
            Some("invalid target URL scheme: \"ftp\", expected http or https")
        );
        assert_eq!(
            url_problem("/rel").as_deref(),
            Some("invalid target URL scheme: \"\", expected http or https")
        );
        assert_eq!(url_problem("http://").as_deref(), None);
        assert_eq!(
            check_uuid("not-a-uuid"),
            Err("malformed endpoint ID: \"invalid UUID length: 10\"".to_owned())
        );
    }

    #[test]
    fn url_schemes_read_as_gos_parser_reads_them() {
        assert_eq!(url_scheme("https://x.example/p"), "https");
        assert_eq!(url_scheme("HTTP://x"), "http");
        assert_eq!(url_scheme("localhost:80"), "localhost");
        assert_eq!(url_scheme("not a url"), "");
        assert_eq!(url_scheme("/rel"), "");
        assert_eq!(
            url_problem("http://x y").as_deref(),
            Some("invalid target URL: parse \"http://x y\": invalid character \" \" in host name")
        );
    }
}
