//! Compiles the contract in `proto/` with protox (no system `protoc`) and
//! writes the file descriptor set that the reflection service serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PORTONE_FACADE_GIT_REVISION");
    let version = env::var("CARGO_PKG_VERSION")?;
    let version = match env::var("PORTONE_FACADE_GIT_REVISION") {
        Ok(revision) if !revision.is_empty() => format!("{version} ({revision})"),
        _ => version,
    };
    println!("cargo:rustc-env=PORTONE_FACADE_VERSION={version}");
    let files = [
        "proto/portone/facade/v1/payment_prepare_service.proto",
        "proto/portone/facade/v1/payment_link_service.proto",
        "proto/portone/facade/v1/payment_verification_service.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("portone_facade_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
