//! Opening the index: creating it, checking it, and moving a damaged index
//! or one of another schema aside to start afresh.

use super::niceness::low_priority_writer;
use super::schema::Fields;
use super::writer::{EmbeddedOptions, Staged, WriterState, remove_unfinished_files};
use super::{EmbeddedStore, Inner, index_err, stems};
use crate::store::StoreError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tantivy::directory::{Directory, INDEX_WRITER_LOCK, MmapDirectory};
use tantivy::{Index, IndexReader, ReloadPolicy};

/// Why [`EmbeddedStore::open_or_rebuild`] started an empty index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub cause: RebuildCause,
    /// What was wrong with the old index.
    pub reason: String,
    /// Where the old index was moved.
    pub moved_to: PathBuf,
}

/// What made an index unusable as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildCause {
    /// Its files are damaged (cut short, failing their checksums).
    Damaged,
    /// It was written with another schema: by another release of the
    /// operator, whose documents this one cannot read or write.
    OtherSchema,
}

fn checksum_mismatch(files: &std::collections::HashSet<PathBuf>) -> String {
    let mut names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    names.sort();
    format!("checksum mismatch in {}", names.join(", "))
}

/// `<dir>.damaged`, beside the index directory (on the same volume, so the
/// move is a rename).
pub fn damaged_copy_path(dir: &Path) -> PathBuf {
    beside(dir, ".damaged")
}

/// `<dir>.other-schema`: where an index another release wrote is kept, so
/// that rolling back to that release can put it back instead of resyncing.
pub fn other_schema_copy_path(dir: &Path) -> PathBuf {
    beside(dir, ".other-schema")
}

fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

enum OpenError {
    /// The files are there but unusable: rebuilding from Confluence helps.
    Damaged(String),
    /// Written with another schema: rebuilding from Confluence helps.
    OtherSchema(String),
    /// Anything else (permissions, lock): rebuilding would not help,
    /// or would throw away an index that is fine.
    Failed(StoreError),
}

impl OpenError {
    fn damaged_or_failed(e: tantivy::TantivyError) -> Self {
        use tantivy::TantivyError as T;
        use tantivy::directory::error::OpenReadError;
        match e {
            T::OpenReadError(OpenReadError::IoError { ref io_error, .. })
                if io_error.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                OpenError::Failed(index_err(e))
            }
            T::IoError(ref io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                OpenError::Failed(index_err(e))
            }
            T::LockFailure(..) | T::SchemaError(..) | T::SystemError(..) => {
                OpenError::Failed(index_err(e))
            }
            other => OpenError::Damaged(other.to_string()),
        }
    }
}

impl EmbeddedStore {
    /// Opens the index in `dir`, creating the directory and an empty index if
    /// needed. Fails if another process holds the index, if the index was
    /// written with another schema, or if it is damaged (see
    /// [`EmbeddedStore::open_or_rebuild`], which rebuilds it in both cases).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Like [`EmbeddedStore::open`], with explicit writer tuning.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        Self::open_checked(dir, &options).map_err(|e| match e {
            OpenError::Damaged(why) => {
                StoreError::Index(format!("index at {} is damaged: {why}", dir.display()))
            }
            OpenError::OtherSchema(why) => StoreError::Config(format!(
                "index at {} was written with another schema ({why})",
                dir.display()
            )),
            OpenError::Failed(e) => e,
        })
    }

    /// Opens the index like [`EmbeddedStore::open_with`]; when it is damaged
    /// (a segment file truncated or failing its checksum, `meta.json`
    /// unreadable), moves it aside to `<dir>.damaged` (replacing an earlier
    /// damaged copy, so a volume does not fill up with them) and starts an
    /// empty index in its place, which the next syncs refill from Confluence.
    /// An index written with another schema (by an earlier release, after an
    /// upgrade) is moved aside to `<dir>.other-schema` the same way.
    /// Checking every checksum reads the whole index once, at start-up only.
    pub fn open_or_rebuild(
        dir: &Path,
        options: EmbeddedOptions,
    ) -> Result<(Self, Option<Rebuilt>), StoreError> {
        let (cause, why) = match Self::open_checked(dir, &options) {
            Ok(store) => return Ok((store, None)),
            Err(OpenError::Failed(e)) => return Err(e),
            Err(OpenError::Damaged(why)) => (RebuildCause::Damaged, why),
            Err(OpenError::OtherSchema(why)) => (RebuildCause::OtherSchema, why),
        };
        let aside = match cause {
            RebuildCause::Damaged => damaged_copy_path(dir),
            RebuildCause::OtherSchema => other_schema_copy_path(dir),
        };
        if aside.exists() {
            std::fs::remove_dir_all(&aside)
                .map_err(|e| StoreError::Io(format!("cannot remove {}: {e}", aside.display())))?;
        }
        std::fs::rename(dir, &aside).map_err(|e| {
            StoreError::Io(format!(
                "index at {} is unusable ({why}) and cannot be moved aside: {e}",
                dir.display()
            ))
        })?;
        let store = Self::open_with(dir, options)?;
        Ok((
            store,
            Some(Rebuilt {
                cause,
                reason: why,
                moved_to: aside,
            }),
        ))
    }

    /// Checks every file of the committed index against its checksum, as
    /// [`EmbeddedStore::open_or_rebuild`] does at start (it reads the whole
    /// index). `Ok(Some(why))` when a file fails. An error means the check
    /// could not run to its end (a merge may have removed a file meanwhile),
    /// which says nothing about damage.
    pub fn find_damage(&self) -> Result<Option<String>, StoreError> {
        // tantivy replaces `meta.json` by a rename and never removes it, so
        // its absence means the files were removed under the process (which
        // keeps serving what it has mapped, and can write nothing).
        if !self.inner.dir.join("meta.json").exists() {
            return Ok(Some(format!(
                "the index files were removed from {}",
                self.inner.dir.display()
            )));
        }
        match self.inner.index.validate_checksum() {
            Ok(damaged) if damaged.is_empty() => Ok(None),
            Ok(damaged) => Ok(Some(checksum_mismatch(&damaged))),
            Err(e) => Err(index_err(e)),
        }
    }

    fn open_checked(dir: &Path, options: &EmbeddedOptions) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError::Failed(StoreError::Io(format!(
                "cannot create {}: {e}",
                dir.display()
            )))
        })?;
        let (schema, fields) = Fields::schema();
        let directory = MmapDirectory::open(dir).map_err(|e| {
            OpenError::Failed(StoreError::Io(format!(
                "cannot open {}: {e}",
                dir.display()
            )))
        })?;
        // Held while the index is checked (and, when damaged, moved aside), so
        // an index another process is writing is never taken for damaged; the
        // writer takes the same lock again below.
        let check_lock = directory.acquire_lock(&INDEX_WRITER_LOCK).map_err(|_| {
            OpenError::Failed(StoreError::Io(format!(
                "index at {} is locked by another writer",
                dir.display()
            )))
        })?;
        let index = Index::open_or_create(directory, schema).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(msg) => OpenError::OtherSchema(msg),
            other => OpenError::damaged_or_failed(other),
        })?;
        match index.validate_checksum() {
            Ok(damaged) if damaged.is_empty() => {}
            Ok(damaged) => return Err(OpenError::Damaged(checksum_mismatch(&damaged))),
            Err(e) => return Err(OpenError::damaged_or_failed(e)),
        }
        // Opening the reader opens every segment: what the checksums cannot
        // see (a file cut short before its footer) fails here.
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(OpenError::damaged_or_failed)?;
        drop(check_lock);
        // Only indexing remembers stems (on a handle of its own: segments
        // take their analyzers from the handle the writer was made from).
        // Searches run their few short texts through fresh analyzers, where
        // filling a memo costs more than it saves.
        let mut indexing = index.clone();
        indexing.set_tokenizers(stems::indexing());
        let writer = low_priority_writer(&indexing, options).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => OpenError::Failed(StoreError::Io(format!(
                "index at {} is locked by another writer",
                dir.display()
            ))),
            other => OpenError::Failed(index_err(other)),
        })?;
        // tantivy collects garbage only after a successful commit; files of a
        // commit a killed process never finished would otherwise collide with
        // the first commit here (same segment, same opstamp).
        remove_unfinished_files(&writer);
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                fields,
                reader,
                writer: Mutex::new(WriterState {
                    writer,
                    staged: Staged::default(),
                    lost: BTreeSet::new(),
                    last_commit: Instant::now(),
                    pause_timer: false,
                }),
                policy: options.commit.clone(),
                dir: dir.to_path_buf(),
                niceness: options.writer_niceness,
                unusable: tokio::sync::watch::Sender::new(None),
            }),
        })
    }
}
