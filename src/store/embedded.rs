//! The embedded store: a tantivy index in a local directory (a PVC in the
//! cluster) that implements both [`Store`] and [`Search`].
//!
//! Durability model: a tantivy commit atomically replaces `meta.json` after
//! the segment files are synced, so a crash at any point leaves the index at
//! the previous commit; segment files of an unfinished commit are
//! garbage-collected on the next open. Every `Store` call that changes
//! anything ends in a commit (a no-op call, e.g. `set_audience` with the
//! audience the documents already have, commits nothing), except `stage`:
//! staged documents wait in the writer and are committed together, whole
//! calls at a time, when the [`CommitPolicy`] says so, and at the latest by
//! `flush` or by the next call that reads or rewrites stored documents
//! (`versions`, `count`, `upsert`, `delete`, `delete_space`,
//! `set_audience`). A commit per call costs a segment, a sync of the
//! directory and a reader reload; for a bulk load that dominated indexing.
//! Staged documents a failed commit discards are remembered per scope, so
//! the `flush` of that scope fails and the sync that staged them never
//! reports them stored.
//!
//! `open` itself blocks on disk; call it at start-up (or inside
//! `spawn_blocking`), not from a busy async task.
//!
//! Concurrency model: one `IndexWriter` behind a mutex serialises writes; the
//! reader uses `ReloadPolicy::Manual` and is reloaded right after each commit,
//! so a caller sees its own writes as soon as the call returns (staged ones
//! once they are committed: searches lag a running sync by at most
//! [`CommitPolicy::max_age`]). All tantivy work (which blocks on disk and CPU)
//! runs on `spawn_blocking`.

mod stems;
mod visible_top;

use super::{Hit, Search, SearchResults, Store, StoreError};
use crate::model::{Ancestor, Audience, ContentType, Document, Page, SpaceScope};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::{Directory, INDEX_WRITER_LOCK, MmapDirectory};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use visible_top::VisibleTopDocs;

/// Title matches weigh this much more than body matches: a page named after
/// the query is almost always what the reader wants.
const TITLE_BOOST: f32 = 3.0;
/// Caps the terms taken from one query so a pasted wall of text cannot make
/// a single request arbitrarily expensive.
const MAX_QUERY_TERMS: usize = 32;
/// Characters of context in a snippet.
const SNIPPET_CHARS: usize = 200;
/// Indexed value of `visibility` for public documents; segment names live in
/// their own field, so no segment name can collide with it.
const EVERYONE: &str = "everyone";
const SEGMENTS: &str = "segments";
/// Below this much free space a failed write is reported as a full volume.
const LOW_SPACE_BYTES: u64 = 4 * 1024 * 1024;

/// Tuning for the index writer.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Indexing threads. Each one produces its own segment per commit.
    pub writer_threads: usize,
    /// Total indexing memory budget in bytes (tantivy needs at least 15 MB per
    /// thread). A thread whose share fills up writes a segment to disk without
    /// committing, so this bounds the writer's memory however much is staged.
    pub writer_memory_bytes: usize,
    /// When staged documents are committed.
    pub commit: CommitPolicy,
    /// Nice value (0–19) added to the writer's indexing and merge threads,
    /// so that searches come first when a sync and searches share the CPU.
    /// 0 runs them at the process's priority.
    pub writer_niceness: i32,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        // One thread with a modest budget keeps memory predictable in a pod;
        // the sync's fetching and parsing needs the other cores.
        Self {
            writer_threads: 1,
            writer_memory_bytes: 48 * 1024 * 1024,
            commit: CommitPolicy::default(),
            // At 10 the kernel gives a busy thread of normal priority about
            // nine times the CPU of an indexing thread: a search waits little
            // behind a bulk load, and the load still gets every idle cycle.
            writer_niceness: 10,
        }
    }
}

/// When staged documents are committed: as soon as any limit is reached
/// (checked after each `stage` call, and by a timer for `max_age`).
#[derive(Debug, Clone)]
pub struct CommitPolicy {
    /// Documents staged since the last commit.
    pub max_docs: usize,
    /// Bytes of title, text and Markdown staged since the last commit.
    pub max_bytes: usize,
    /// Age of the oldest staged document: how far searches may lag behind a
    /// running sync.
    pub max_age: Duration,
    /// Staging paused this long, with at least `pause_docs` staged: the
    /// writer commits in the pause instead of waiting for a limit.
    pub pause: Duration,
    /// See `pause`.
    pub pause_docs: usize,
    /// The least time from one commit to a commit in a pause.
    pub pause_spacing: Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        // A commit per second at most while a sync writes fast keeps segments
        // few and large (deletes and merges cost per segment), and searches
        // see new pages within a second. The byte limit bounds the documents
        // queued in the writer ahead of its indexing thread, which a commit
        // drains: at 64 MiB a bulk load peaked ~110 MB higher than at 16 MiB,
        // for ~15% more pages/s.
        //
        // A sync stages in bursts, one per listing answer, and waits on the
        // network between them; a commit costs in proportion to what it
        // holds (serializing the segment). Committing in such a wait leaves
        // the commit at the end of a sync, which the sync waits for, only
        // what the last answers brought: in a traced 2,000-page sync it held
        // every page and took 15-21 ms. A bulk load that never pauses is
        // not cut into small segments, and pause commits come at most ten
        // times a second.
        Self {
            max_docs: 20_000,
            max_bytes: 16 * 1024 * 1024,
            max_age: Duration::from_secs(1),
            pause: Duration::from_millis(10),
            pause_docs: 500,
            pause_spacing: Duration::from_millis(100),
        }
    }
}

/// Field handles of the schema; built once so the schema and the code that
/// reads and writes documents cannot drift apart.
#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    scope: Field,
    namespace: Field,
    name: Field,
    site: Field,
    space_key: Field,
    space_name: Field,
    page_id: Field,
    title: Field,
    body: Field,
    body_markdown: Field,
    url: Field,
    labels: Field,
    ancestors: Field,
    version: Field,
    updated_at: Field,
    content_type: Field,
    visibility: Field,
    segments: Field,
    audience_key: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        // English stemming so "deploying" finds "deployment". Frequencies
        // (for scoring) but no positions: queries are plain terms (see
        // `text_query`) and snippets re-tokenize the stored text, so
        // positions only cost indexing time (a seventh of it, measured) and
        // disk. Adding phrase search means adding them back (a schema
        // change: the index is rebuilt).
        let text = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(stems::NAME)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
            .set_stored();
        let fields = Fields {
            // Only the fields queried by term are indexed: each indexed field
            // builds a term dictionary at every commit, a fixed cost per
            // commit (~0.5 ms each, measured) that the end of every sync
            // waits for. Changing which fields are indexed changes the
            // schema, and an index of another schema is rebuilt at start.
            id: b.add_text_field("id", STRING | STORED),
            scope: b.add_text_field("scope", STRING),
            namespace: b.add_text_field("namespace", STORED),
            name: b.add_text_field("name", STORED),
            site: b.add_text_field("site", STORED),
            space_key: b.add_text_field("space_key", STORED),
            space_name: b.add_text_field("space_name", STORED),
            // Fast so `versions` reads ids and versions from columns instead
            // of decompressing every stored document.
            page_id: b.add_text_field("page_id", STORED | FAST),
            title: b.add_text_field("title", text.clone()),
            body: b.add_text_field("body", text),
            body_markdown: b.add_text_field("body_markdown", STORED),
            url: b.add_text_field("url", STORED),
            labels: b.add_text_field("labels", STORED),
            ancestors: b.add_text_field("ancestors", STORED),
            version: b.add_u64_field("version", STORED | FAST),
            updated_at: b.add_text_field("updated_at", STORED),
            content_type: b.add_text_field("content_type", STORED),
            visibility: b.add_text_field("visibility", STRING | STORED),
            segments: b.add_text_field("segments", STRING | STORED),
            // Canonical form of the audience, so `set_audience` can find the
            // documents that still carry another audience with one query.
            audience_key: b.add_text_field("audience_key", STRING),
        };
        (b.build(), fields)
    }
}

fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

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

/// Deletes the index files no commit refers to (best effort: what cannot be
/// deleted now is retried after the next commit).
fn remove_unfinished_files(writer: &IndexWriter<TantivyDocument>) {
    if let Err(e) = writer.garbage_collect_files().wait() {
        tracing::warn!(error = %e, "could not remove unfinished index files");
    }
}

/// Creates the index writer from a thread at `writer_niceness`: the writer's
/// indexing and merge threads (and the threads those start, such as the
/// document store's compressor) inherit the nice value of the thread that
/// creates them, and no other thread of the process is affected.
fn low_priority_writer(
    index: &Index,
    options: &EmbeddedOptions,
) -> tantivy::Result<IndexWriter<TantivyDocument>> {
    let (threads, memory) = (options.writer_threads.max(1), options.writer_memory_bytes);
    at_niceness(options.writer_niceness, || {
        index.writer_with_num_threads(threads, memory)
    })
}

/// Runs `f` on a thread of its own at `niceness`, for tantivy calls that
/// start the writer's threads (creating a writer, and a rollback, which
/// replaces it): those inherit the nice value of the thread that starts
/// them.
fn at_niceness<T: Send>(
    niceness: i32,
    f: impl FnOnce() -> tantivy::Result<T> + Send,
) -> tantivy::Result<T> {
    let niceness = niceness.clamp(0, 19);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("index-writer-start".into())
            .spawn_scoped(scope, move || {
                if niceness > 0 {
                    lower_this_threads_priority(niceness);
                }
                f()
            })
            .map_err(|e| tantivy::TantivyError::SystemError(format!("cannot start a thread: {e}")))?
            .join()
            .map_err(|_| {
                tantivy::TantivyError::SystemError("starting the index writer panicked".into())
            })?
    })
}

/// Raises the calling thread's nice value by `niceness` (Linux keeps a nice
/// value per thread). Best effort: without it indexing only competes harder
/// with searches.
#[cfg(target_os = "linux")]
fn lower_this_threads_priority(niceness: i32) {
    use std::ffi::{c_int, c_uint};
    const PRIO_PROCESS: c_int = 0;
    unsafe extern "C" {
        fn setpriority(which: c_int, who: c_uint, prio: c_int) -> c_int;
        fn getpriority(which: c_int, who: c_uint) -> c_int;
    }
    // SAFETY: both only read or set the scheduling priority of the calling
    // thread (`who` 0); no memory is shared with the call.
    let failed = unsafe {
        let current = getpriority(PRIO_PROCESS, 0);
        setpriority(PRIO_PROCESS, 0, (current + niceness).min(19)) != 0
    };
    if failed {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the index writer's priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority(_niceness: i32) {}

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

struct Inner {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<WriterState>,
    policy: CommitPolicy,
    dir: PathBuf,
    /// The writer threads' nice value, kept when a rollback replaces them.
    niceness: i32,
    /// Why the writer can take no more writes (its directory was removed
    /// under it, say). Set once; the operator exits on it so that its
    /// restart opens the index afresh.
    unusable: tokio::sync::watch::Sender<Option<String>>,
}

/// The writer and what it holds that is not committed yet; one lock, so a
/// commit and the bookkeeping of what it covered cannot drift apart.
struct WriterState {
    writer: IndexWriter<TantivyDocument>,
    staged: Staged,
    /// Scopes whose staged documents a rollback discarded; the next `flush`
    /// of each reports it.
    lost: BTreeSet<String>,
    last_commit: Instant,
    /// Whether a pause-commit timer is running (one at a time).
    pause_timer: bool,
}

/// Documents staged since the last commit.
#[derive(Default)]
struct Staged {
    docs: usize,
    bytes: usize,
    since: Option<Instant>,
    /// When the last `stage` call ended.
    last: Option<Instant>,
    scopes: BTreeSet<String>,
    /// Their document ids: a page staged twice before a commit must replace
    /// its first copy, which the committed index cannot show yet.
    ids: HashSet<String>,
}

/// Commit timers a `stage` call asks for.
#[derive(Default)]
struct Timers {
    /// The first documents since the last commit: commit them by `max_age`.
    age: bool,
    /// Enough staged to commit in the next pause.
    pause: bool,
}

/// A document converted for the index, with what staging accounts for.
struct Encoded {
    id: String,
    scope: String,
    bytes: usize,
    doc: TantivyDocument,
}

/// A tantivy index on a local directory. Cheap to clone; clones share the index.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.dir)
            .finish()
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
        // filling a memo costs more than it saves (measured).
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

    /// Why the index can take no more writes, once a failed write has left
    /// its writer unable to start again; `None` while it is usable.
    pub fn unusable(&self) -> Option<String> {
        self.inner.unusable.borrow().clone()
    }

    /// Waits until the index can take no more writes (see
    /// [`EmbeddedStore::unusable`]) and returns why.
    pub async fn wait_unusable(&self) -> String {
        let mut seen = self.inner.unusable.subscribe();
        match seen.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The sender lives as long as the store this borrows.
            Err(_) => std::future::pending().await,
        }
    }

    /// Directory holding the index.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Documents across every space.
    pub async fn total(&self) -> Result<u64, StoreError> {
        self.blocking(|inner| Ok(inner.reader.searcher().num_docs()))
            .await
    }

    /// Converts documents for the index before the writer is touched, so a
    /// bad document fails the call without any operation queued. Runs on the
    /// caller's thread: it is a copy of each document, and doing it here
    /// spares copying them into the blocking task first.
    fn encode_all(&self, docs: &[Document]) -> Result<Vec<Encoded>, StoreError> {
        docs.iter()
            .map(|d| {
                Ok(Encoded {
                    id: d.id(),
                    scope: d.scope.key(),
                    bytes: d.page.title.len() + d.page.body_text.len() + d.page.body_markdown.len(),
                    doc: self.inner.encode(d)?,
                })
            })
            .collect()
    }

    /// Commits staged documents once the oldest is `max_age` old, also when
    /// no further call comes (a sync waiting on Confluence). Holds the index
    /// only weakly: a store dropped meanwhile commits nothing more.
    fn arm_commit_timer(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        let age = self.inner.policy.max_age;
        runtime.spawn(async move {
            tokio::time::sleep(age).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let done = tokio::task::spawn_blocking(move || inner.commit_if_due()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "embedded index: timed commit failed");
            }
        });
    }

    /// Watches for a pause in staging (see [`CommitPolicy::pause`]). Without
    /// a runtime nothing watches, and the other limits commit as before.
    fn arm_pause_timer(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            if let Ok(mut w) = self.inner.lock_writer() {
                w.pause_timer = false;
            }
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        let mut wait = self.inner.policy.pause;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(wait).await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match tokio::task::spawn_blocking(move || inner.commit_if_paused()).await {
                    Ok(Ok(Some(next))) => wait = next,
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "embedded index: commit in a pause failed");
                        return;
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// Runs tantivy work off the async runtime's worker threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Index(format!("index task failed: {e}")))?
    }
}

impl Inner {
    fn lock_writer(&self) -> Result<MutexGuard<'_, WriterState>, StoreError> {
        if let Some(why) = self.unusable.borrow().as_ref() {
            return Err(StoreError::Index(why.clone()));
        }
        match self.writer.lock() {
            Ok(guard) => Ok(guard),
            Err(poisoned) => {
                // A panic mid-write may have left uncommitted operations in
                // the writer; drop them so the next commit cannot publish a
                // half-applied call.
                let mut guard = poisoned.into_inner();
                self.writer.clear_poison();
                self.discard(&mut guard);
                Ok(guard)
            }
        }
    }

    /// Drops every uncommitted operation; scopes that had documents staged
    /// learn it at their next `flush`.
    fn discard(&self, w: &mut WriterState) {
        self.rollback(w);
        let staged = std::mem::take(&mut w.staged);
        w.lost.extend(staged.scopes);
    }

    /// Drops the writer's uncommitted operations. tantivy's rollback starts a
    /// new writer; when that fails (the directory is gone), the writer has
    /// given up its lock and a second rollback would panic, so it is marked
    /// unusable and never touched again.
    fn rollback(&self, w: &mut WriterState) {
        if self.unusable.borrow().is_some() {
            return;
        }
        let writer = &mut w.writer;
        if let Err(e) = at_niceness(self.niceness, || writer.rollback()) {
            let why = format!(
                "the index at {} can take no more writes: its writer could not start again after a failed write ({e})",
                self.dir.display()
            );
            tracing::error!(reason = %why, "embedded index unusable");
            self.unusable.send_replace(Some(why));
        }
    }

    /// Commits whatever the writer holds and makes it visible to searches.
    fn commit(&self, w: &mut WriterState) -> Result<(), StoreError> {
        if let Err(e) = w.writer.commit() {
            self.discard(w);
            // A commit that failed half-way (disk full) leaves files named
            // after the opstamp the retry reuses; the retry would then fail
            // on them for ever (`FileAlreadyExists`).
            remove_unfinished_files(&w.writer);
            return Err(self.explain(index_err(e)));
        }
        w.staged = Staged::default();
        w.last_commit = Instant::now();
        self.reader.reload().map_err(index_err)
    }

    /// Commits staged documents, if any.
    fn commit_staged(&self, w: &mut WriterState) -> Result<(), StoreError> {
        if w.staged.docs == 0 {
            return Ok(());
        }
        self.commit(w)
    }

    /// Applies `ops` and commits them as one unit; rolls back on failure.
    /// `ops` returns whether it changed anything (nothing to commit otherwise).
    fn write<F>(&self, ops: F) -> Result<(), StoreError>
    where
        F: FnOnce(&IndexWriter<TantivyDocument>, &Searcher) -> Result<bool, StoreError>,
    {
        let mut w = self.lock_writer()?;
        // Staged documents go first, in their own commit: `ops` must see
        // them, and a rollback of `ops` must not take them along.
        self.commit_staged(&mut w)?;
        // Taken under the writer lock, so it reflects the last commit and no
        // other write can interleave between reading and writing.
        let searcher = self.reader.searcher();
        let changed = match ops(&w.writer, &searcher) {
            Ok(changed) => changed,
            Err(e) => {
                self.rollback(&mut w);
                return Err(self.explain(e));
            }
        };
        if !changed {
            return Ok(());
        }
        self.commit(&mut w)
    }

    /// Adds `docs` to the writer without committing, unless the policy says
    /// it is time. Says which commit timers the caller must start.
    fn stage(&self, docs: Vec<Encoded>) -> Result<Timers, StoreError> {
        let mut w = self.lock_writer()?;
        let first = w.staged.docs == 0;
        // Recorded before anything is added, so a failure below marks these
        // scopes as lost too.
        for d in &docs {
            if !w.staged.scopes.contains(&d.scope) {
                w.staged.scopes.insert(d.scope.clone());
            }
        }
        let n = docs.len();
        let mut bytes = 0;
        // Reflects the last commit: every commit reloads the reader under
        // the writer lock held here.
        let committed = self.reader.searcher();
        for d in docs {
            bytes += d.bytes;
            let term = self.term(self.fields.id, &d.id);
            // A delete is only queued for a document that may exist. tantivy
            // keeps each queued delete (a query weight of about 1 KiB) until
            // the commit; in a first sync every page is new, and those
            // deletes were the largest part of what a commit held.
            if w.staged.ids.contains(&d.id) || may_hold(&committed, &term) {
                w.writer.delete_term(term);
            }
            w.staged.ids.insert(d.id);
            if let Err(e) = w.writer.add_document(d.doc) {
                self.discard(&mut w);
                return Err(self.explain(index_err(e)));
            }
        }
        let staged = &mut w.staged;
        staged.docs += n;
        staged.bytes += bytes;
        let since = *staged.since.get_or_insert_with(Instant::now);
        if staged.docs >= self.policy.max_docs
            || staged.bytes >= self.policy.max_bytes
            || since.elapsed() >= self.policy.max_age
        {
            self.commit(&mut w)?;
            return Ok(Timers::default());
        }
        staged.last = Some(Instant::now());
        let pause = staged.docs >= self.policy.pause_docs && !w.pause_timer;
        w.pause_timer |= pause;
        Ok(Timers { age: first, pause })
    }

    /// The pause timer: commits once staging has paused for `pause` with
    /// `pause_docs` staged, no sooner than `pause_spacing` after the last
    /// commit. Returns how long to wait before asking again, or `None` when
    /// the timer is done (it committed, or a commit came first).
    fn commit_if_paused(&self) -> Result<Option<Duration>, StoreError> {
        let mut w = self.lock_writer()?;
        let quiet = match w.staged.last {
            Some(last) if w.staged.docs >= self.policy.pause_docs => last.elapsed(),
            _ => {
                w.pause_timer = false;
                return Ok(None);
            }
        };
        let spacing = self.policy.pause_spacing;
        let wait = self
            .policy
            .pause
            .saturating_sub(quiet)
            .max(spacing.saturating_sub(w.last_commit.elapsed()));
        if !wait.is_zero() {
            return Ok(Some(wait));
        }
        w.pause_timer = false;
        self.commit(&mut w).map(|()| None)
    }

    /// The `max_age` timer: commits when the oldest staged document is due.
    /// A commit since the timer was armed leaves nothing (or younger
    /// documents with their own timer) staged.
    fn commit_if_due(&self) -> Result<(), StoreError> {
        let mut w = self.lock_writer()?;
        match w.staged.since {
            Some(since) if since.elapsed() >= self.policy.max_age => self.commit(&mut w),
            _ => Ok(()),
        }
    }

    /// Commits staged documents; fails if any staged for `scope` were lost.
    fn flush(&self, scope: &str) -> Result<(), StoreError> {
        let mut w = self.lock_writer()?;
        let committed = self.commit_staged(&mut w);
        let lost = w.lost.remove(scope);
        committed?;
        if lost {
            return Err(StoreError::Index(
                "documents staged for this space were discarded by a failed commit; a resync restores them"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Reads that must see every write made before them call this first.
    fn settle(&self) -> Result<(), StoreError> {
        let mut w = self.lock_writer()?;
        self.commit_staged(&mut w)
    }

    /// A failed write on a full volume surfaces from tantivy's indexing
    /// thread as "index writer was killed", the cause lost; name it, since
    /// freeing space is what the user must do.
    fn explain(&self, e: StoreError) -> StoreError {
        match fs4::available_space(&self.dir) {
            Ok(free) if free < LOW_SPACE_BYTES => StoreError::Io(format!(
                "no space left on the index volume ({} KiB free at {}); the write was rolled back and the last commit is kept ({e})",
                free / 1024,
                self.dir.display()
            )),
            _ => e,
        }
    }

    fn term(&self, field: Field, value: &str) -> Term {
        Term::from_field_text(field, value)
    }

    fn term_query(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            self.term(field, value),
            IndexRecordOption::Basic,
        ))
    }

    fn encode(&self, doc: &Document) -> Result<TantivyDocument, StoreError> {
        let f = &self.fields;
        let mut t = TantivyDocument::default();
        t.add_text(f.id, doc.id());
        t.add_text(f.scope, doc.scope.key());
        t.add_text(f.namespace, &doc.scope.namespace);
        t.add_text(f.name, &doc.scope.name);
        t.add_text(f.site, &doc.site);
        t.add_text(f.space_key, &doc.space_key);
        t.add_text(f.space_name, &doc.space_name);
        t.add_text(f.page_id, &doc.page.id);
        t.add_text(f.title, &doc.page.title);
        t.add_text(f.body, &doc.page.body_text);
        t.add_text(f.body_markdown, &doc.page.body_markdown);
        t.add_text(f.url, &doc.page.url);
        for label in &doc.page.labels {
            t.add_text(f.labels, label);
        }
        let ancestors = serde_json::to_string(&doc.page.ancestors)
            .map_err(|e| StoreError::Index(format!("cannot encode ancestors: {e}")))?;
        t.add_text(f.ancestors, ancestors);
        t.add_u64(f.version, doc.page.version);
        if let Some(ts) = doc.page.updated_at {
            // RFC 3339 text round-trips at full precision.
            t.add_text(f.updated_at, ts.to_string());
        }
        t.add_text(f.content_type, doc.page.content_type.as_str());
        match &doc.audience {
            Audience::Everyone => t.add_text(f.visibility, EVERYONE),
            Audience::Segments(segments) => {
                t.add_text(f.visibility, SEGMENTS);
                for s in segments {
                    t.add_text(f.segments, s);
                }
            }
        }
        t.add_text(f.audience_key, doc.audience.canonical_key());
        Ok(t)
    }

    fn decode(&self, t: &TantivyDocument) -> Result<Document, StoreError> {
        let f = &self.fields;
        let text = |field: Field, what: &str| -> Result<String, StoreError> {
            t.get_first(field)
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| StoreError::Index(format!("stored document lacks {what}")))
        };
        let all = |field: Field| -> Vec<String> {
            t.get_all(field)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let ancestors: Vec<Ancestor> = serde_json::from_str(&text(f.ancestors, "ancestors")?)
            .map_err(|e| StoreError::Index(format!("stored ancestors are corrupt: {e}")))?;
        let updated_at = match t.get_first(f.updated_at).and_then(|v| v.as_str()) {
            Some(s) => Some(
                s.parse()
                    .map_err(|e| StoreError::Index(format!("stored updated_at is corrupt: {e}")))?,
            ),
            None => None,
        };
        let content_type = match text(f.content_type, "content_type")?.as_str() {
            "blogpost" => ContentType::Blogpost,
            _ => ContentType::Page,
        };
        let audience = if text(f.visibility, "visibility")? == EVERYONE {
            Audience::Everyone
        } else {
            Audience::Segments(all(f.segments))
        };
        let version = t
            .get_first(f.version)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| StoreError::Index("stored document lacks version".into()))?;
        Ok(Document {
            scope: SpaceScope::new(text(f.namespace, "namespace")?, text(f.name, "name")?),
            site: text(f.site, "site")?,
            space_key: text(f.space_key, "space_key")?,
            space_name: text(f.space_name, "space_name")?,
            page: Page {
                id: text(f.page_id, "page_id")?,
                content_type,
                title: text(f.title, "title")?,
                body_markdown: text(f.body_markdown, "body_markdown")?,
                body_text: text(f.body, "body")?,
                url: text(f.url, "url")?,
                version,
                labels: all(f.labels),
                ancestors,
                updated_at,
            },
            audience,
        })
    }

    /// Matches documents whose audience admits a caller holding `segments`.
    /// Scores nothing, so it filters without changing the ranking.
    fn visibility_filter(&self, segments: &[String]) -> Box<dyn Query> {
        let f = &self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Should, self.term_query(f.visibility, EVERYONE))];
        let unique: BTreeSet<&str> = segments.iter().map(String::as_str).collect();
        for s in unique {
            should.push((Occur::Should, self.term_query(f.segments, s)));
        }
        Box::new(ConstScoreQuery::new(
            Box::new(BooleanQuery::new(should)),
            0.0,
        ))
    }

    /// Builds the full-text part of a query from raw user input. The input is
    /// run through the fields' analyzer and only plain terms are used, so no
    /// character in it can be mistaken for query syntax or make parsing fail.
    fn text_query(&self, input: &str) -> Result<Option<Box<dyn Query>>, StoreError> {
        let f = &self.fields;
        let mut analyzer = self.index.tokenizer_for_field(f.body).map_err(index_err)?;
        let mut stream = analyzer.token_stream(input);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let text = &stream.token().text;
            if !terms.iter().any(|t| t == text) {
                terms.push(text.clone());
            }
            if terms.len() >= MAX_QUERY_TERMS {
                break;
            }
        }
        if terms.is_empty() {
            return Ok(None);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for t in &terms {
            let in_title = TermQuery::new(self.term(f.title, t), IndexRecordOption::WithFreqs);
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(in_title), TITLE_BOOST)),
            ));
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    self.term(f.body, t),
                    IndexRecordOption::WithFreqs,
                )),
            ));
        }
        Ok(Some(Box::new(BooleanQuery::new(clauses))))
    }

    fn search(
        &self,
        input: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let f = &self.fields;
        let Some(text) = self.text_query(input)? else {
            return Ok(SearchResults::default());
        };
        if limit == 0 {
            return Ok(SearchResults::default());
        }
        let searcher = self.reader.searcher();
        let visible = self
            .visibility_filter(segments)
            .weight(EnableScoring::disabled_from_searcher(&searcher))
            .map_err(index_err)?;
        let (top, total) = searcher
            .search(text.as_ref(), &VisibleTopDocs::new(limit, visible))
            .map_err(index_err)?;
        let mut snippets =
            SnippetGenerator::create(&searcher, text.as_ref(), f.body).map_err(index_err)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(index_err)?;
            let get = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let snippet = snippets.snippet_from_doc(&doc);
            let snippet = if snippet.is_empty() {
                // Matched on the title only: show the start of the page.
                leading_chars(&get(f.body), SNIPPET_CHARS)
            } else {
                snippet.fragment().trim().to_string()
            };
            hits.push(Hit {
                id: get(f.id),
                title: get(f.title),
                snippet,
                url: get(f.url),
                space_key: get(f.space_key),
                score,
            });
        }
        Ok(SearchResults { hits, total })
    }

    fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError> {
        let searcher = self.reader.searcher();
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.term_query(self.fields.id, id)),
            (Occur::Must, self.visibility_filter(segments)),
        ]);
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(index_err)?;
        match top.first() {
            Some((_, addr)) => {
                let doc: TantivyDocument = searcher.doc(*addr).map_err(index_err)?;
                let doc = self.decode(&doc)?;
                // Belt and braces: the index filter and the model agree.
                Ok(doc.audience.admits(segments).then_some(doc))
            }
            None => Ok(None),
        }
    }

    fn scope_docs(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
    ) -> Result<Vec<DocAddress>, StoreError> {
        let mut addrs: Vec<DocAddress> = searcher
            .search(query, &DocSetCollector)
            .map_err(index_err)?
            .into_iter()
            .collect();
        addrs.sort();
        Ok(addrs)
    }

    fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        self.settle()?;
        let searcher = self.reader.searcher();
        let query = self.term_query(self.fields.scope, &scope.key());
        let addrs = self.scope_docs(&searcher, query.as_ref())?;
        let mut by_segment: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for a in addrs {
            by_segment.entry(a.segment_ord).or_default().push(a.doc_id);
        }
        let mut out = HashMap::new();
        for (segment_ord, docs) in by_segment {
            let reader = searcher.segment_reader(segment_ord);
            let fast = reader.fast_fields();
            let versions = fast.u64("version").map_err(index_err)?;
            let ids = fast
                .str("page_id")
                .map_err(index_err)?
                .ok_or_else(|| StoreError::Index("page_id column missing".into()))?;
            // Term ordinal -> version, sorted by ordinal: resolving sorted
            // ordinals in one dictionary pass is far cheaper than one lookup
            // per document.
            let mut by_ord: BTreeMap<u64, u64> = BTreeMap::new();
            for doc in docs {
                if let Some(ord) = ids.term_ords(doc).next() {
                    by_ord.insert(ord, versions.first(doc).unwrap_or(0));
                }
            }
            let ords: Vec<u64> = by_ord.keys().copied().collect();
            let mut versions_in_order = by_ord.values().copied();
            let mut bad_utf8 = false;
            let complete = ids
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |bytes| {
                    let version = versions_in_order.next().unwrap_or(0);
                    match std::str::from_utf8(bytes) {
                        Ok(id) => {
                            out.insert(id.to_string(), version);
                        }
                        Err(_) => bad_utf8 = true,
                    }
                })
                .map_err(|e| StoreError::Io(e.to_string()))?;
            if bad_utf8 || !complete {
                return Err(StoreError::Index(
                    "page id column is inconsistent with its dictionary".into(),
                ));
            }
        }
        Ok(out)
    }
}

/// Whether a committed segment may hold a document with `term`: deleted
/// documents still count (a needless delete is harmless), and so does an
/// index that cannot answer.
fn may_hold(searcher: &Searcher, term: &Term) -> bool {
    searcher.num_docs() > 0 && searcher.doc_freq(term).map_or(true, |n| n > 0)
}

fn leading_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((end, _)) => format!("{}…", text[..end].trim_end()),
        None => text.to_string(),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn name(&self) -> &str {
        "embedded"
    }

    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let converted = self.encode_all(docs)?;
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                for d in converted {
                    // Delete-then-add replaces; a delete only affects
                    // documents added before it, so a page listed twice in
                    // one batch ends up stored once (the last copy).
                    writer.delete_term(inner.term(inner.fields.id, &d.id));
                    writer.add_document(d.doc).map_err(index_err)?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn stage(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let converted = self.encode_all(docs)?;
        let timers = self.blocking(move |inner| inner.stage(converted)).await?;
        if timers.age {
            self.arm_commit_timer();
        }
        if timers.pause {
            self.arm_pause_timer();
        }
        Ok(())
    }

    async fn flush(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        let key = scope.key();
        self.blocking(move |inner| inner.flush(&key)).await
    }

    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError> {
        if page_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = page_ids.iter().map(|p| scope.document_id(p)).collect();
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                for id in &ids {
                    writer.delete_term(inner.term(inner.fields.id, id));
                }
                Ok(true)
            })
        })
        .await
    }

    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        let key = scope.key();
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                writer.delete_term(inner.term(inner.fields.scope, &key));
                Ok(true)
            })
        })
        .await
    }

    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        let scope = scope.clone();
        self.blocking(move |inner| inner.versions(&scope)).await
    }

    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), StoreError> {
        let key = scope.key();
        let audience = audience.clone();
        self.blocking(move |inner| {
            let f = inner.fields;
            inner.write(|writer, searcher| {
                // Only documents still carrying another audience are
                // rewritten; the sync calls this on every run, and an
                // unchanged audience must cost one query, not a re-index.
                let stale = BooleanQuery::new(vec![
                    (Occur::Must, inner.term_query(f.scope, &key)),
                    (
                        Occur::MustNot,
                        inner.term_query(f.audience_key, &audience.canonical_key()),
                    ),
                ]);
                let addrs = inner.scope_docs(searcher, &stale)?;
                if addrs.is_empty() {
                    return Ok(false);
                }
                for addr in addrs {
                    let stored: TantivyDocument = searcher.doc(addr).map_err(index_err)?;
                    let mut doc = inner.decode(&stored)?;
                    doc.audience = audience.clone();
                    writer.delete_term(inner.term(f.id, &doc.id()));
                    writer
                        .add_document(inner.encode(&doc)?)
                        .map_err(index_err)?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError> {
        let key = scope.key();
        self.blocking(move |inner| {
            inner.settle()?;
            let q = inner.term_query(inner.fields.scope, &key);
            let n = inner
                .reader
                .searcher()
                .search(q.as_ref(), &Count)
                .map_err(index_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl Search for EmbeddedStore {
    async fn search_counted(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let query = query.to_string();
        let segments = segments.to_vec();
        self.blocking(move |inner| inner.search(&query, &segments, limit))
            .await
    }

    async fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError> {
        let id = id.to_string();
        let segments = segments.to_vec();
        self.blocking(move |inner| inner.get(&id, &segments)).await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Nice values of this process's index writer threads.
    fn writer_thread_nice_values() -> Vec<i64> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter_map(|stat| {
                // "tid (comm) state ..." : the comm may hold spaces, so split
                // after its closing parenthesis; nice is the 19th field.
                let (head, rest) = stat.rsplit_once(')')?;
                head.contains("thrd-tantivy-in")
                    .then(|| rest.split_whitespace().nth(16)?.parse().ok())?
            })
            .collect()
    }

    /// [`writer_thread_nice_values`] once the threads have named
    /// themselves (a thread sets its name after it starts).
    async fn started_writer_threads() -> Vec<i64> {
        for _ in 0..100 {
            let found = writer_thread_nice_values();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }

    fn document(id: &str) -> Document {
        Document {
            scope: SpaceScope::new("ns", "space"),
            site: "https://wiki.example.com".into(),
            space_key: "KB".into(),
            space_name: "KB".into(),
            page: Page {
                id: id.into(),
                content_type: ContentType::Page,
                title: "Router".into(),
                body_markdown: "reset the router".into(),
                body_text: "reset the router".into(),
                url: format!("https://wiki.example.com/pages/{id}"),
                version: 1,
                labels: Vec::new(),
                ancestors: Vec::new(),
                updated_at: None,
            },
            audience: Audience::Everyone,
        }
    }

    #[tokio::test]
    async fn writer_threads_keep_their_priority_after_a_rollback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let base = started_writer_threads().await;
        assert!(!base.is_empty(), "no index writer threads found");
        let lowered = *base.iter().min().expect("a thread");
        assert!(lowered > 0, "writer threads run at nice {lowered}");

        // A failed write rolls back, and tantivy starts new writer threads.
        store.stage(&[document("1")]).await.expect("stage");
        {
            let mut w = store.inner.lock_writer().expect("writer");
            store.inner.discard(&mut w);
        }
        assert!(store.unusable().is_none());
        let after = started_writer_threads().await;
        assert!(
            !after.is_empty(),
            "no index writer threads after the rollback"
        );
        assert!(
            after.iter().all(|n| *n >= lowered),
            "writer threads after a rollback run at {after:?}, before at {base:?}"
        );
        store.upsert(&[document("2")]).await.expect("writes go on");
    }
}
