//! What tells one version of a file from the next without reading it:
//! a rewrite changes the size or the modification time, a replacement
//! (kubelet's symlink swap, a rename over the old file) the inode.

use std::path::Path;
use std::time::SystemTime;

/// A file's identity and version as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of what `path` names now (following symlinks), if it exists.
    pub fn of(path: &Path) -> Option<FileStamp> {
        std::fs::metadata(path)
            .ok()
            .map(|m| FileStamp::from_metadata(&m))
    }

    /// The stamp of already-fetched metadata.
    pub fn from_metadata(m: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        }
    }
}
