//! The writer: staging, the commit policy and its timers, and committing.

use super::niceness::at_niceness;
use super::{EmbeddedStore, Inner, index_err};
use crate::model::Document;
use crate::store::StoreError;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};
use tantivy::{IndexWriter, Searcher, TantivyDocument, Term};

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
        // drains: a higher limit buys little speed for much more memory.
        //
        // A sync stages in bursts, one per listing answer, and waits on the
        // network between them; a commit costs in proportion to what it
        // holds (serializing the segment). Committing in such a wait leaves
        // the commit at the end of a sync, which the sync waits for, only
        // what the last answers brought instead of every page. A bulk load
        // that never pauses is not cut into small segments, and pause
        // commits come at most ten times a second.
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

/// Deletes the index files no commit refers to (best effort: what cannot be
/// deleted now is retried after the next commit).
pub(super) fn remove_unfinished_files(writer: &IndexWriter<TantivyDocument>) {
    if let Err(e) = writer.garbage_collect_files().wait() {
        tracing::warn!(error = %e, "could not remove unfinished index files");
    }
}

/// The writer and what it holds that is not committed yet; one lock, so a
/// commit and the bookkeeping of what it covered cannot drift apart.
pub(super) struct WriterState {
    pub(super) writer: IndexWriter<TantivyDocument>,
    pub(super) staged: Staged,
    /// Scopes whose staged documents a rollback discarded; the next `flush`
    /// of each reports it.
    pub(super) lost: BTreeSet<String>,
    pub(super) last_commit: Instant,
    /// Whether a pause-commit timer is running (one at a time).
    pub(super) pause_timer: bool,
}

/// Documents staged since the last commit.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) docs: usize,
    pub(super) bytes: usize,
    pub(super) since: Option<Instant>,
    /// When the last `stage` call ended.
    pub(super) last: Option<Instant>,
    pub(super) scopes: BTreeSet<String>,
    /// Their document ids: a page staged twice before a commit must replace
    /// its first copy, which the committed index cannot show yet.
    pub(super) ids: HashSet<String>,
}

/// Commit timers a `stage` call asks for.
#[derive(Default)]
pub(super) struct Timers {
    /// The first documents since the last commit: commit them by `max_age`.
    pub(super) age: bool,
    /// Enough staged to commit in the next pause.
    pub(super) pause: bool,
}

/// A commit timer's check: how long to wait before checking again, or
/// `None` when the timer is done.
type Check = fn(&Inner) -> Result<Option<Duration>, StoreError>;

/// A document converted for the index, with what staging accounts for.
pub(super) struct Encoded {
    pub(super) id: String,
    pub(super) scope: String,
    pub(super) bytes: usize,
    pub(super) doc: TantivyDocument,
}

impl EmbeddedStore {
    /// Converts documents for the index before the writer is touched, so a
    /// bad document fails the call without any operation queued. Runs on the
    /// caller's thread: it is a copy of each document, and doing it here
    /// spares copying them into the blocking task first.
    pub(super) fn encode_all(&self, docs: &[Document]) -> Result<Vec<Encoded>, StoreError> {
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
    /// no further call comes (a sync waiting on Confluence).
    pub(super) fn arm_commit_timer(&self) {
        self.watch(self.inner.policy.max_age, "timed commit failed", |inner| {
            inner.commit_if_due().map(|()| None)
        });
    }

    /// Watches for a pause in staging (see [`CommitPolicy::pause`]). Without
    /// a runtime nothing watches, and the other limits commit as before.
    pub(super) fn arm_pause_timer(&self) {
        let watching = self.watch(
            self.inner.policy.pause,
            "commit in a pause failed",
            Inner::commit_if_paused,
        );
        if !watching && let Ok(mut w) = self.inner.lock_writer() {
            w.pause_timer = false;
        }
    }

    /// Runs `check` on the blocking pool once `first_wait` has passed, and
    /// again after each wait it returns, until it returns none or fails
    /// (logged as `failure`). Holds the index only weakly: a store dropped
    /// meanwhile is checked no more. False when there is no runtime to
    /// watch from.
    fn watch(&self, first_wait: Duration, failure: &'static str, check: Check) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut wait = first_wait;
            loop {
                tokio::time::sleep(wait).await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match tokio::task::spawn_blocking(move || check(&inner)).await {
                    Ok(Ok(Some(next))) => wait = next,
                    Ok(Ok(None)) | Err(_) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "embedded index: {failure}");
                        return;
                    }
                }
            }
        });
        true
    }
}

impl Inner {
    pub(super) fn lock_writer(&self) -> Result<MutexGuard<'_, WriterState>, StoreError> {
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
    pub(super) fn discard(&self, w: &mut WriterState) {
        self.rollback(w);
        let staged = std::mem::take(&mut w.staged);
        w.lost.extend(staged.scopes);
    }

    /// Drops the writer's uncommitted operations. tantivy's rollback starts a
    /// new writer; when that fails (the directory is gone), the writer has
    /// given up its lock and a second rollback would panic, so it is marked
    /// unusable and never touched again.
    pub(super) fn rollback(&self, w: &mut WriterState) {
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
    pub(super) fn commit(&self, w: &mut WriterState) -> Result<(), StoreError> {
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
    pub(super) fn write<F>(&self, ops: F) -> Result<(), StoreError>
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
    pub(super) fn stage(&self, docs: Vec<Encoded>) -> Result<Timers, StoreError> {
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
    pub(super) fn flush(&self, scope: &str) -> Result<(), StoreError> {
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
    pub(super) fn settle(&self) -> Result<(), StoreError> {
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
}

/// Whether a committed segment may hold a document with `term`: deleted
/// documents still count (a needless delete is harmless), and so does an
/// index that cannot answer.
fn may_hold(searcher: &Searcher, term: &Term) -> bool {
    searcher.num_docs() > 0 && searcher.doc_freq(term).map_or(true, |n| n > 0)
}
