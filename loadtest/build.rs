//! Copies the descriptor set that `temporalio-protos` exports (links = temporalio_protos) into
//! OUT_DIR, so that the fuzzer can walk every RPC of the Temporal API by reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptor_path = env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH").map_err(
        |_| "temporalio-protos did not export its descriptor set (links = temporalio_protos)",
    )?;
    println!("cargo:rerun-if-changed={descriptor_path}");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::copy(&descriptor_path, out.join("temporal_descriptor.bin"))?;
    Ok(())
}
