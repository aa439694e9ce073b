//! coffer's web UI, embedded: the files under `web/` (HTML, CSS and ES
//! modules written by hand, no framework and nothing fetched from elsewhere),
//! each kept as is and gzip-compressed by the build script.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path under `/ui/` (`index.html`, `js/app.js`, ...).
    pub path: &'static str,
    /// `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// Strong `ETag` (quoted), from the content's hash.
    pub etag: &'static str,
    /// The file as written.
    pub raw: &'static [u8],
    /// The file gzip-compressed.
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at `path` (relative to `/ui/`), if the UI has one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Every embedded file.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

/// The page every UI route loads.
pub fn index() -> &'static Asset {
    // The build script fails without web/index.html, so it is always there.
    asset("index.html").unwrap_or(&ASSETS[0])
}
