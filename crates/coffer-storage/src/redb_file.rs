//! Embedded default backend: one redb file, ACID, fsync on every commit.
//!
//! Writes go through one committer thread that applies every batch waiting at
//! that moment in a single transaction, so concurrent writers share an fsync
//! (group commit). Each caller still returns only once its batch is durable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use redb::{Database, TableDefinition};
use tokio::sync::oneshot;

use crate::listing::list_level;
use crate::{Op, Storage, StorageError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("coffer");

/// redb's page cache.
const REDB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Most batches folded into one transaction; bounds the latency of the first.
const GROUP_MAX: usize = 256;

type Reply = oneshot::Sender<Result<(), String>>;

/// A single-file store under the data directory.
pub struct FileStorage {
    db: Arc<Database>,
    path: Arc<str>,
    writes: Option<mpsc::Sender<(Vec<Op>, Reply)>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FileStorage {
    // Finish queued commits and release the file before returning, so the
    // same file can be opened again at once.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

impl FileStorage {
    /// Opens (or creates) the store file at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let shown: Arc<str> = path.display().to_string().into();
        let err = |e: &dyn std::fmt::Display| StorageError::File {
            path: shown.to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
            restrict_dir(dir);
        }
        // redb's own page cache defaults to 1 GiB; the ciphertext cache above it
        // serves hot reads, so a modest page cache keeps memory predictable.
        let db = Database::builder()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(path)
            .map_err(|e| err(&e))?;
        restrict_file(path);
        // Create the table once so read transactions never see it missing.
        let tx = db.begin_write().map_err(|e| err(&e))?;
        tx.open_table(TABLE).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        let db = Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let committer = db.clone();
        let committer = std::thread::Builder::new()
            .name("coffer-redb-commit".into())
            .spawn(move || commit_loop(&committer, &queue))
            .map_err(|e| err(&e))?;
        Ok(Self {
            db,
            path: shown,
            writes: Some(writes),
            committer: Some(committer),
        })
    }

    /// Queues a batch for the committer and waits until it is durable.
    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StorageError::Task("the redb committer thread stopped".into());
        self.writes
            .as_ref()
            .ok_or_else(gone)?
            .send((ops, tx))
            .map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|message| StorageError::File {
                path: self.path.to_string(),
                message,
            })
    }

    /// The data file's path.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.path.as_ref())
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, String> + Send + 'static,
    {
        let db = self.db.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
            .map_err(|message| StorageError::File {
                path: path.to_string(),
                message,
            })
    }
}

#[cfg(unix)]
fn restrict_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // The file holds only ciphertext, but nobody else has any business reading it.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
        && dir.file_name().is_some()
    {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}

#[cfg(not(unix))]
fn restrict_file(_: &Path) {}
#[cfg(not(unix))]
fn restrict_dir(_: &Path) {}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Applies every batch in one transaction (one fsync).
fn write_group(db: &Database, batches: &[&[Op]]) -> Result<(), String> {
    let tx = db.begin_write().map_err(s)?;
    {
        let mut table = tx.open_table(TABLE).map_err(s)?;
        for op in batches.iter().flat_map(|b| b.iter()) {
            match op {
                Op::Put(k, v) => {
                    table.insert(k.as_str(), v.as_slice()).map_err(s)?;
                }
                Op::Delete(k) => {
                    table.remove(k.as_str()).map_err(s)?;
                }
            }
        }
    }
    tx.commit().map_err(s)
}

/// The committer: takes what is queued, commits it together, answers each
/// caller. Ends when the store is dropped.
fn commit_loop(db: &Database, queue: &mpsc::Receiver<(Vec<Op>, Reply)>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batches: Vec<&[Op]> = group.iter().map(|(ops, _)| ops.as_slice()).collect();
        if group.len() == 1 || write_group(db, &batches).is_err() {
            // Alone, or one bad batch spoiled the group: each in its own
            // transaction, so no batch fails for another's error.
            for (ops, reply) in group {
                let _ = reply.send(write_group(db, &[&ops]));
            }
            continue;
        }
        for (_, reply) in group {
            let _ = reply.send(Ok(()));
        }
    }
}

fn list_children(db: &Database, prefix: &str) -> Result<Vec<String>, String> {
    let tx = db.begin_read().map_err(s)?;
    let table = tx.open_table(TABLE).map_err(s)?;
    list_level(prefix, |start| {
        let mut range = table.range::<&str>(start..).map_err(s)?;
        match range.next() {
            Some(item) => Ok(Some(item.map_err(s)?.0.value().to_owned())),
            None => Ok(None),
        }
    })
}

#[async_trait]
impl Storage for FileStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_owned();
        self.run(move |db| {
            let tx = db.begin_read().map_err(s)?;
            let table = tx.open_table(TABLE).map_err(s)?;
            Ok(table
                .get(key.as_str())
                .map_err(s)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.write(vec![Op::Put(key.to_owned(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.write(vec![Op::Delete(key.to_owned())]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_owned();
        self.run(move |db| list_children(db, &prefix)).await
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        self.write(ops).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
