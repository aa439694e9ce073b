//! Embedded default backend: one redb file, ACID, fsync on every commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, TableDefinition};

use crate::listing::list_level;
use crate::{Op, Storage, StorageError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("coffer");

/// A single-file store under the data directory.
pub struct FileStorage {
    db: Arc<Database>,
    path: Arc<str>,
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
        let db = Database::create(path).map_err(|e| err(&e))?;
        restrict_file(path);
        // Create the table once so read transactions never see it missing.
        let tx = db.begin_write().map_err(|e| err(&e))?;
        tx.open_table(TABLE).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        Ok(Self {
            db: Arc::new(db),
            path: shown,
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

fn write_ops(db: &Database, ops: &[Op]) -> Result<(), String> {
    let tx = db.begin_write().map_err(s)?;
    {
        let mut table = tx.open_table(TABLE).map_err(s)?;
        for op in ops {
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
        let ops = vec![Op::Put(key.to_owned(), value)];
        self.run(move |db| write_ops(db, &ops)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let ops = vec![Op::Delete(key.to_owned())];
        self.run(move |db| write_ops(db, &ops)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_owned();
        self.run(move |db| list_children(db, &prefix)).await
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        self.run(move |db| write_ops(db, &ops)).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
