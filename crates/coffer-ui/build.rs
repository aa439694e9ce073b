//! Embeds the web UI: every file under `web/` becomes an entry of a static
//! table, kept as is and gzip-compressed (at the best level, once, here), with
//! a content hash for `ETag`. Nothing built is committed and no Node.js is
//! needed: the browser loads the ES modules as they are written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") | Some("webmanifest") => "application/manifest+json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        other => panic!(
            "web/: no content type known for extension {other:?} ({})",
            path.display()
        ),
    }
}

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("web");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=web");
    let mut list = Vec::new();
    files(&root, &mut list);
    assert!(
        list.iter().any(|p| p == &root.join("index.html")),
        "web/index.html is missing: the UI has no page to load"
    );
    let mut table = String::from("pub(crate) static ASSETS: &[Asset] = &[\n");
    for (i, path) in list.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path
            .strip_prefix(&root)
            .expect("under web/")
            .to_str()
            .expect("UTF-8 file name")
            .replace('\\', "/");
        let raw = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&raw);
        let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let (raw_name, gz_name) = (format!("asset{i}"), format!("asset{i}.gz"));
        std::fs::write(out_dir.join(&raw_name), &raw).expect("write asset");
        std::fs::write(out_dir.join(&gz_name), &gz).expect("write asset");
        writeln!(
            table,
            "    Asset {{ path: {rel:?}, content_type: {:?}, etag: \"\\\"{etag}\\\"\", raw: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{raw_name}\")), gzip: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{gz_name}\")) }},",
            mime(path)
        )
        .expect("format");
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), table).expect("write assets.rs");
}
