//! Generates the Temporal server traits (WorkflowService, OperatorService) from the descriptor
//! set the `temporalio-protos` crate exports, and temper's own messages and internal services
//! from `protos/temper`. Temporal's message types are never regenerated: `extern_path` maps
//! them to the `temporalio_protos` crate.

use std::{env, path::PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;
use protox::file::{
    ChainFileResolver, DescriptorSetFileResolver, GoogleFileResolver, IncludeFileResolver,
};

const TEMPORAL_SERVICE_FILES: &[&str] = &[
    "temporal/api/workflowservice/v1/service.proto",
    "temporal/api/operatorservice/v1/service.proto",
];

const OWN_FILES: &[&str] = &[
    "temper/persistence/v1/state.proto",
    "temper/persistence/v1/schedule.proto",
    "temper/internal/v1/history.proto",
    "temper/internal/v1/matching.proto",
    "temper/internal/v1/admin.proto",
    "temper/internal/v1/errors.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptor_path = env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH").map_err(
        |_| "temporalio-protos did not export its descriptor set (links = temporalio_protos)",
    )?;
    println!("cargo:rerun-if-changed={descriptor_path}");
    println!("cargo:rerun-if-changed=protos");
    let bytes = std::fs::read(&descriptor_path)?;
    let temporal_set = FileDescriptorSet::decode(bytes.as_slice())?;

    // 1. Server traits for the two public Temporal services, nothing else.
    let services = FileDescriptorSet {
        file: temporal_set
            .file
            .iter()
            .filter(|f| TEMPORAL_SERVICE_FILES.contains(&f.name()))
            .cloned()
            .collect(),
    };
    if services.file.len() != TEMPORAL_SERVICE_FILES.len() {
        return Err(
            "temporalio-protos descriptor set lacks the workflowservice/operatorservice files"
                .into(),
        );
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The whole set, for reading Temporal messages in their JSON form (System Nexus inputs).
    std::fs::write(out.join("temporal_descriptor.bin"), &bytes)?;
    std::fs::write(
        out.join("api_methods.rs"),
        api_methods(&temporal_set, &services),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .generate_default_stubs(true)
        .extern_path(".temporal", "::temporalio_protos::temporal")
        .compile_fds(services)?;

    // 2. Our own files, importing Temporal's types from the same descriptor set.
    let mut resolver = ChainFileResolver::new();
    resolver.add(IncludeFileResolver::new(PathBuf::from("protos")));
    resolver.add(DescriptorSetFileResolver::decode(bytes.as_slice())?);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    // prost needs every imported message to decide derives, so imports stay in the set; the
    // code it also writes for Temporal's packages lands in its own directory and is unused.
    compiler.include_imports(true);
    compiler.open_files(OWN_FILES)?;
    let own = compiler.file_descriptor_set();
    let own_dir = out.join("own");
    std::fs::create_dir_all(&own_dir)?;
    tonic_prost_build::configure()
        .out_dir(&own_dir)
        .build_server(true)
        .generate_default_stubs(true)
        .build_client(true)
        .build_transport(true)
        .extern_path(".temporal", "::temporalio_protos::temporal")
        .compile_fds_with_config(own, own_config())?;
    Ok(())
}

/// Our messages implement `prost::Name`, so that the error details in `errors.proto` can be
/// packed into an `Any` and recognised by their full name.
fn own_config() -> tonic_prost_build::Config {
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // A standalone activity's record holds a whole ActivityInfo and its outcome; inline it
    // would grow every MutableState (and every copy a transaction makes on the stack) for
    // the few runs that have one.
    config.boxed(".temper.persistence.v1.MutableState.standalone_activity");
    config.boxed(".temper.persistence.v1.MutableState.standalone_nexus_operation");
    config
}

/// Every method of the public services, with the field numbers of its request's top-level
/// `namespace` (string) and `task_token` (bytes) fields, as a Rust table: authorization reads
/// those fields from a request without decoding the whole message, and its tests check that
/// every method has an access class.
fn api_methods(all: &FileDescriptorSet, services: &FileDescriptorSet) -> String {
    use prost_types::field_descriptor_proto::Type;
    let message = |full: &str| {
        all.file.iter().find_map(|f| {
            let name = full.strip_prefix(&format!(".{}.", f.package()))?;
            f.message_type.iter().find(|m| m.name() == name)
        })
    };
    let mut rows = String::new();
    for file in &services.file {
        for service in &file.service {
            for method in &service.method {
                let input = message(method.input_type());
                let field = |name: &str, ty: Type| {
                    input
                        .and_then(|m| {
                            m.field
                                .iter()
                                .find(|f| f.name() == name && f.r#type() == ty)
                        })
                        .map_or("None".to_string(), |f| format!("Some({})", f.number()))
                };
                rows.push_str(&format!(
                    "    ApiMethod {{ service: \"{}.{}\", name: \"{}\", namespace_field: {}, task_token_field: {}, client_streaming: {} }},\n",
                    file.package(),
                    service.name(),
                    method.name(),
                    field("namespace", Type::String),
                    field("task_token", Type::Bytes),
                    method.client_streaming(),
                ));
            }
        }
    }
    format!("pub const API_METHODS: &[ApiMethod] = &[\n{rows}];\n")
}
