//! The index writer's threads run at a lower priority than searches.

use super::writer::EmbeddedOptions;
use tantivy::{Index, IndexWriter, TantivyDocument};

/// Creates the index writer from a thread at `writer_niceness`: the writer's
/// indexing and merge threads (and the threads those start, such as the
/// document store's compressor) inherit the nice value of the thread that
/// creates them, and no other thread of the process is affected.
pub(super) fn low_priority_writer(
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
pub(super) fn at_niceness<T: Send>(
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use crate::model::{Audience, ContentType, Document, Page, SpaceScope};
    use crate::store::Store;
    use crate::store::embedded::EmbeddedStore;
    use std::time::Duration;

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
