//! Generates the gRPC server glue of the Kubernetes KMS v2 service
//! (`v2.KeyManagementService`, see proto/kms_v2.proto) with tonic-build's
//! manual mode: the messages are described in `src/kms/proto.rs`, so no
//! protoc is needed at build time.

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::kms::proto::{input}"))
            .output_type(format!("crate::kms::proto::{output}"))
            .codec_path("tonic::codec::ProstCodec")
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("KeyManagementService")
        .package("v2")
        .method(method(
            "status",
            "Status",
            "StatusRequest",
            "StatusResponse",
        ))
        .method(method(
            "decrypt",
            "Decrypt",
            "DecryptRequest",
            "DecryptResponse",
        ))
        .method(method(
            "encrypt",
            "Encrypt",
            "EncryptRequest",
            "EncryptResponse",
        ))
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .build_transport(false)
        .compile(&[service]);
    println!("cargo:rerun-if-changed=build.rs");
}
